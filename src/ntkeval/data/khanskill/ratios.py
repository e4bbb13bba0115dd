"""KhanSkill domains "ratios-rates" (ratios, unit rates, sharing) and "percents" (conversions, change, discounts)."""

from __future__ import annotations

import random
from decimal import Decimal
from fractions import Fraction
from math import gcd

from ntkeval.data.khanskill.core import NAMES, Problem, SkillBank, money, problem
from ntkeval.data.khanskill.number_text import decimal_text, shown
from ntkeval.data.khanskill.work import step, worked

bank = SkillBank()
RAT, PCT = "ratios-rates", "percents"
RATES = (("A car travels {total} miles in {count} hours.", "How many miles does it travel per hour?"),
         ("{name} types {total} words in {count} minutes.", "How many words does {name} type per minute?"),
         ("A printer prints {total} pages in {count} minutes.", "How many pages does it print per minute?"),
         ("A pump fills {total} liters in {count} minutes.", "How many liters does it fill per minute?"))
GOODS = (("pencil", "pencils"), ("apple", "apples"), ("notebook", "notebooks"), ("candle", "candles"),
         ("jar of jam", "jars of jam"))
SALE_ITEMS = ("jacket", "pair of shoes", "backpack", "lamp", "board game", "bike helmet")


def coprime_pair(rng: random.Random, high: int = 12) -> tuple[int, int] | None:
    p, q = rng.randint(1, high), rng.randint(1, high)
    return (p, q) if p != q and gcd(p, q) == 1 else None


@bank.skill(RAT, "simplify-ratio", "Write a ratio in simplest form", 6, "ratio")
def simplify_ratio(rng: random.Random) -> Problem | None:
    if (pair := coprime_pair(rng)) is None:
        return None
    factor = rng.randint(2, 12)
    a, b = pair[0] * factor, pair[1] * factor
    g, answer = gcd(a, b), f"{a // gcd(a, b)}:{b // gcd(a, b)}"
    program = f'from math import gcd\ng = gcd({a}, {b})\nprint(f"{{{a} // g}}:{{{b} // g}}")\n'
    work = worked(step(f"gcd({a}, {b})", g, "Greatest common factor:"), step(f"({a} // {g}, {b} // {g})", answer),
                  program=program)
    return problem(f"Write the ratio {a}:{b} in simplest form.", answer, a=a, b=b, work=work)


@bank.skill(RAT, "ratio-missing-term", "Find the missing term of equivalent ratios", 6, "integer")
def ratio_missing_term(rng: random.Random) -> Problem | None:
    if (pair := coprime_pair(rng)) is None:
        return None
    (p, q), factor = pair, rng.randint(2, 12)
    if rng.random() < 0.5:
        work = worked(step(f"{p * factor} / {p}", factor, "Scale factor:"), step(f"{q} * {factor}", q * factor))
        return problem(f"What number goes in the blank: {p}:{q} = {p * factor}:_?", str(q * factor),
                       p=p, q=q, first=p * factor, _blank="second", work=work)
    work = worked(step(f"{q * factor} / {q}", factor, "Scale factor:"), step(f"{p} * {factor}", p * factor))
    return problem(f"What number goes in the blank: {p}:{q} = _:{q * factor}?", str(p * factor),
                   p=p, q=q, second=q * factor, _blank="first", work=work)


@bank.skill(RAT, "unit-rate", "Find a unit rate", 6, "integer")
def unit_rate(rng: random.Random) -> Problem | None:
    rate, count = rng.randint(12, 90), rng.randint(2, 9)
    given, asked = rng.choice(RATES)
    text = f"{given} {asked}".format(total=rate * count, count=count, name=rng.choice(NAMES))
    return problem(text, str(rate), total=rate * count, count=count,
                   work=worked(step(f"{rate * count} / {count}", rate)))


@bank.skill(RAT, "unit-price", "Find the price of one item", 6, "decimal")
def unit_price(rng: random.Random) -> Problem | None:
    price, count = Decimal(rng.randint(25, 999)) / 100, rng.randint(2, 12)
    one, many = rng.choice(GOODS)
    text = f"{count} {many} cost ${count * price:.2f}. How much does one {one} cost, in dollars?"
    return problem(text, money(price), count=count, total=count * price,
                   work=worked(step(f"{count * price:.2f} / {count}", money(price))))


@bank.skill(RAT, "ratio-word-problem", "Ratio word problems", 6, "integer")
def ratio_word_problem(rng: random.Random) -> Problem | None:
    if (pair := coprime_pair(rng, 9)) is None:
        return None
    (p, q), factor = pair, rng.randint(2, 10)
    text = (f"The ratio of boys to girls in a club is {p}:{q}. There are {p * factor} boys. "
            "How many girls are in the club?")
    work = worked(step(f"{p * factor} / {p}", factor, "Boys in one part:"), step(f"{q} * {factor}", q * factor))
    return problem(text, str(q * factor), p=p, q=q, boys=p * factor, work=work)


@bank.skill(RAT, "share-in-ratio", "Share an amount in a given ratio", 7, "integer")
def share_in_ratio(rng: random.Random) -> Problem | None:
    if (pair := coprime_pair(rng, 9)) is None:
        return None
    (p, q), factor = pair, rng.randint(2, 20)
    first, second = rng.sample(NAMES, 2)
    text = (f"{first} and {second} share {(p + q) * factor} dollars in the ratio {p}:{q}. "
            f"How many dollars does {first} get?")
    work = worked(step(f"{p} + {q}", p + q, "Parts in all:"),
                  step(f"{(p + q) * factor} / {p + q}", factor, "One part:"),
                  step(f"{p} * {factor}", p * factor))
    return problem(text, str(p * factor), p=p, q=q, total=(p + q) * factor, work=work)


@bank.skill(PCT, "percent-of-a-number", "Find a percent of a number", 6, "decimal")
def percent_of_a_number(rng: random.Random) -> Problem | None:
    percent = rng.choice((5, 10, 20, 25, 50, 75)) if rng.random() < 0.4 else rng.randint(1, 100)
    n = rng.randint(10, 400)
    answer = decimal_text(Fraction(percent * n, 100))
    return problem(f"What is {percent}% of {n}?", answer, p=percent, n=n,
                   work=worked(step(f"{percent} / 100 * {n}", answer)))


@bank.skill(PCT, "percent-to-decimal", "Write a percent as a decimal", 6, "decimal")
def percent_to_decimal(rng: random.Random) -> Problem | None:
    percent = Decimal(rng.randint(1, 400)) / (2 if rng.random() < 0.2 else 1)
    return problem(f"Write {decimal_text(percent)}% as a decimal.", decimal_text(percent / 100), p=percent,
                   work=worked(step(f"{decimal_text(percent)} / 100", decimal_text(percent / 100))))


@bank.skill(PCT, "fraction-to-percent", "Write a fraction as a percent", 6, "percent")
def fraction_to_percent(rng: random.Random) -> Problem | None:
    den = rng.choice((2, 4, 5, 8, 10, 20, 25, 40, 50))
    num = rng.randint(1, 2 * den - 1)
    if gcd(num, den) != 1:
        return None
    value = Fraction(num, den)
    return problem(f"Write {shown(value)} as a percent.", decimal_text(value * 100) + "%", f=value,
                   work=worked(step(f"{num} / {den} * 100", decimal_text(value * 100) + "%")))


@bank.skill(PCT, "what-percent", "What percent one number is of another", 7, "percent")
def what_percent(rng: random.Random) -> Problem | None:
    whole, percent = rng.randint(8, 500), rng.randint(1, 99)
    if whole * percent % 100:
        return None  # the part must be a whole number
    part = whole * percent // 100
    text = rng.choice(("What percent of {w} is {p}?", "{p} is what percent of {w}?"))
    return problem(text.format(w=whole, p=part), f"{percent}%", whole=whole, part=part,
                   work=worked(step(f"{part} / {whole} * 100", f"{percent}%")))


@bank.skill(PCT, "percent-change", "Percent increase and decrease", 7, "percent")
def percent_change(rng: random.Random) -> Problem | None:
    old, percent = rng.randint(10, 200), rng.randint(5, 90)
    direction = rng.choice(("increase", "decrease"))
    if old * percent % 100:
        return None
    change = old * percent // 100
    new = old + change if direction == "increase" else old - change
    verb = "rose" if direction == "increase" else "fell"
    item = rng.choice(SALE_ITEMS)
    text = f"The price of a {item} {verb} from ${old} to ${new}. By what percent did the price {direction}?"
    work = worked(step(f"{new} - {old}" if new > old else f"{old} - {new}", change, f"The {direction}:"),
                  step(f"{change} / {old} * 100", f"{percent}%"))
    return problem(text, f"{percent}%", old=old, new=new, direction=direction, work=work)


@bank.skill(PCT, "sale-price", "Price after a discount", 7, "decimal")
def sale_price(rng: random.Random) -> Problem | None:
    price, percent = rng.randint(10, 250), rng.randrange(5, 80, 5)
    text = f"A ${price} {rng.choice(SALE_ITEMS)} is on sale for {percent}% off. What is the sale price, in dollars?"
    discount = decimal_text(Fraction(price * percent, 100))
    work = worked(step(f"{price} * {percent} / 100", discount, "The discount:"),
                  step(f"{price} - {discount}", money(Fraction(price * (100 - percent), 100))))
    return problem(text, money(Fraction(price * (100 - percent), 100)), price=price, p=percent, work=work)


@bank.skill(PCT, "simple-interest", "Simple interest", 7, "decimal")
def simple_interest(rng: random.Random) -> Problem | None:
    principal, rate, years = rng.randrange(100, 5001, 50), rng.randint(1, 10), rng.randint(2, 10)
    text = (f"${principal} is saved in an account that pays {rate}% simple interest per year. "
            f"How much interest does it earn in {years} years, in dollars?")
    yearly = decimal_text(Fraction(principal * rate, 100))
    work = worked(step(f"{principal} * {rate} / 100", yearly, "Interest in one year:"),
                  step(f"{yearly} * {years}", money(Fraction(principal * rate * years, 100))))
    return problem(text, money(Fraction(principal * rate * years, 100)), principal=principal, rate=rate, years=years,
                   work=work)

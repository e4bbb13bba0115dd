"""KhanSkill domains "place-value" (digits, rounding, expanded form, number names) and "time-money"."""

from __future__ import annotations

import random
from decimal import ROUND_HALF_UP, Decimal

from ntkeval.data.khanskill.core import NAMES, Problem, SkillBank, money, problem
from ntkeval.data.khanskill.work import step, worked

bank = SkillBank()
PLACE, TIME = "place-value", "time-money"
PLACES = ("ones", "tens", "hundreds", "thousands", "ten thousands", "hundred thousands")
ROUNDING = {"ten": 10, "hundred": 100, "thousand": 1000}
ONES = ("", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
ITEMS = ("notebook", "sandwich", "toy car", "scarf", "book", "lunch box", "kite", "puzzle")


def _unique_digit(rng: random.Random) -> tuple[int, int, int] | None:
    """(number, digit, place) where the nonzero digit occurs once in the number, so 'the digit d' is clear."""
    n = rng.randint(1000, 999_999)
    text = str(n)
    place = rng.randrange(len(text))
    digit = int(text[len(text) - 1 - place])
    return (n, digit, place) if digit and text.count(str(digit)) == 1 else None


@bank.skill(PLACE, "digit-value", "Value of a digit", 4, "integer")
def digit_value(rng: random.Random) -> Problem | None:
    if (drawn := _unique_digit(rng)) is None:
        return None
    n, digit, place = drawn
    work = worked(step(f"{digit} * 10 ** {place}", digit * 10**place, f"The {digit} is in the {PLACES[place]} place:"))
    return problem(f"What is the value of the digit {digit} in {n:,}?", str(digit * 10**place),
                   key=f"{n}:{digit}", n=n, digit=digit, work=work)


@bank.skill(PLACE, "place-of-digit", "Name the place of a digit", 4, "text", PLACES)
def place_of_digit(rng: random.Random) -> Problem | None:
    if (drawn := _unique_digit(rng)) is None:
        return None
    n, digit, place = drawn
    text = rng.choice(("In {n:,}, which place is the digit {d} in?", "Which place is the {d} in, in the number {n:,}?"))
    program = f"places = {PLACES!r}\ndigits = str({n})\nprint(places[len(digits) - 1 - digits.index('{digit}')])\n"
    work = worked(step(f"{n} // 10 ** {place} % 10", digit, "Counting places from the ones:"),
                  step(f"10 ** {place}", PLACES[place], "The place worth"), program=program, computational=False)
    return problem(text.format(n=n, d=digit), PLACES[place], key=f"{n}:{digit}", n=n, digit=digit, work=work)


@bank.skill(PLACE, "round-whole-numbers", "Round whole numbers to the nearest 10, 100 or 1000", 4, "integer")
def round_whole_numbers(rng: random.Random) -> Problem | None:
    word = rng.choice(tuple(ROUNDING))
    unit, n = ROUNDING[word], rng.randint(100, 99_999)
    if n < unit or n % unit == 0:
        return None  # nothing to round
    rounded = (n + unit // 2) // unit * unit  # half up, the school convention
    work = worked(step(f"({n} + {unit // 2}) // {unit} * {unit}", rounded, "Add half the unit and cut off:"))
    return problem(f"Round {n:,} to the nearest {word}.", str(rounded), n=n, place=word, work=work)


@bank.skill(PLACE, "round-decimals", "Round decimals to the nearest tenth or hundredth", 5, "decimal")
def round_decimals(rng: random.Random) -> Problem | None:
    word, places = rng.choice((("tenth", 1), ("hundredth", 2)))
    x = Decimal(rng.randint(1, 99_999)) / 1000
    if x.as_tuple().exponent > -3:
        return None  # fewer than three decimals: rounding would be trivial or nothing
    rounded = x.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    shifted = x * 10**places + Decimal("0.5")
    work = worked(step(f"{x} * {10**places} + 0.5", shifted, "Shift the digits and add a half:"),
                  step(f"{shifted} // 1 / {10**places}", f"{rounded:f}", "Cut off and shift back:"))
    return problem(f"Round {x} to the nearest {word}.", f"{rounded:f}", x=x, place=word, work=work)


@bank.skill(PLACE, "expanded-form", "Write a number from its expanded form", 2, "integer")
def expanded_form(rng: random.Random) -> Problem | None:
    n = rng.randint(1000, 99_999)
    digits = str(n)
    parts = tuple(int(d) * 10 ** (len(digits) - 1 - i) for i, d in enumerate(digits) if d != "0")
    if len(parts) < 2:
        return None
    text = rng.choice(("What number is {e}?", "Write {e} as a single number."))
    return problem(text.format(e=" + ".join(map(str, parts))), str(n), key=str(n), parts=parts,
                   work=worked(step(" + ".join(map(str, parts)), n)))


def number_words(n: int) -> str:
    """English words for 0 < n < 1,000,000, as a school book writes them: 'forty-two thousand, seven'."""
    def below_1000(k: int) -> list[str]:
        words = [f"{ONES[k // 100]} hundred"] if k >= 100 else []
        k %= 100
        if k >= 20:
            words.append(TENS[k // 10] + (f"-{ONES[k % 10]}" if k % 10 else ""))
        elif k:
            words.append(ONES[k])
        return words
    thousands, rest = divmod(n, 1000)
    head = " ".join(below_1000(thousands)) + " thousand" if thousands else ""
    tail = " ".join(below_1000(rest))
    return f"{head}, {tail}" if head and tail else head or tail


@bank.skill(PLACE, "number-from-words", "Write a number given in words", 4, "integer")
def number_from_words(rng: random.Random) -> Problem | None:
    n = rng.randint(1000, 999_999)
    if rng.random() < 0.5:  # numbers with inner zeros are the ones learners misread
        n -= n % 1000 // 10 * 10
    thousands, rest = divmod(n, 1000)
    work = worked(step(f"{thousands} * 1000 + {rest}", n, f"{thousands} thousand and {rest}:"))
    return problem(f"Write {number_words(n)} as a number.", str(n), key=str(n), words=number_words(n), work=work)


def _clock(minutes: int) -> str:
    hour, minute = divmod(minutes, 60)
    return f"{(hour - 1) % 12 + 1}:{minute:02d} {'am' if hour < 12 else 'pm'}"


@bank.skill(TIME, "elapsed-time", "Elapsed time in minutes", 3, "integer")
def elapsed_time(rng: random.Random) -> Problem | None:
    start = rng.randrange(7 * 60, 20 * 60, 5)
    length = rng.randrange(15, 241, 5)
    what = rng.choice(("A movie", "A soccer game", "A school trip", "A piano lesson", "A bike ride"))
    text = f"{what} starts at {_clock(start)} and ends at {_clock(start + length)}. How many minutes does it last?"
    (start_h, start_m), (end_h, end_m) = divmod(start, 60), divmod(start + length, 60)
    work = worked(step(f"{start_h} * 60 + {start_m}", start, "Start, in minutes after midnight:"),
                  step(f"{end_h} * 60 + {end_m}", start + length, "End, in minutes after midnight:"),
                  step(f"{start + length} - {start}", length))
    return problem(text, str(length), start=_clock(start), end=_clock(start + length), work=work)


@bank.skill(TIME, "count-coins", "Count coins", 2, "integer")
def count_coins(rng: random.Random) -> Problem | None:
    q, d, n, p = (rng.randint(0, 9) for _ in range(4))
    counts = [(q, "quarter"), (d, "dime"), (n, "nickel"), (p, "penny")]
    named = [f"{k} {coin if k == 1 else coin.replace('penny', 'pennie') + 's'}" for k, coin in counts if k]
    if len(named) < 2:
        return None
    text = f"How many cents are {', '.join(named[:-1])} and {named[-1]} worth?"
    shown_counts = {f"{coin}s".replace("pennys", "pennies"): k for k, coin in counts if k}  # a 0 is not written
    parts = [(k, cents) for k, cents in ((q, 25), (d, 10), (n, 5), (p, 1)) if k]
    work = worked(*(step(f"{k} * {cents}", k * cents) for k, cents in parts),
                  step(" + ".join(str(k * cents) for k, cents in parts), 25 * q + 10 * d + 5 * n + p))
    return problem(text, str(25 * q + 10 * d + 5 * n + p), **shown_counts, work=work)


@bank.skill(TIME, "make-change", "Make change from a bill", 3, "decimal")
def make_change(rng: random.Random) -> Problem | None:
    cents = rng.randint(101, 4999)
    bill = next(b for b in (5, 10, 20, 50) if b * 100 > cents)
    price = Decimal(cents) / 100
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    text = (f"{name} buys a {item} for ${price:.2f} and pays with a ${bill} bill. "
            f"How much change does {name} get, in dollars?")
    work = worked(step(f"{bill} - {price:.2f}", money(Decimal(bill) - price)))
    return problem(text, money(Decimal(bill) - price), price=price, bill=bill, work=work)

"""KhanSkill domains "factors-multiples" (GCF, LCM, primes, divisibility) and "sequences" (number patterns)."""

from __future__ import annotations

import random
from fractions import Fraction
from math import gcd, isqrt, lcm

from ntkeval.data.khanskill import work as w
from ntkeval.data.khanskill.core import NAMES, Problem, SkillBank, nonzero, problem
from ntkeval.data.khanskill.number_text import signed

bank = SkillBank()
FM, SEQ = "factors-multiples", "sequences"
YES_NO = ("yes", "no")


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % p for p in range(2, int(n**0.5) + 1))


def factors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def prime_powers(n: int) -> list[tuple[int, int]]:
    """The prime factorization of n > 1 as (prime, exponent) pairs, smallest prime first."""
    out, p = [], 2
    while n > 1:
        e = 0
        while n % p == 0:
            n, e = n // p, e + 1
        if e:
            out.append((p, e))
        p += 1
    return out


def _power_text(p: int, e: int) -> str:
    return f"{p} ** {e}" if e > 1 else str(p)


def _gcf_work(a: int, b: int) -> w.Work:
    """Euclid's algorithm: remainders until one is 0; the last divisor is the GCF."""
    steps, x, y = [], a, b
    while y:
        steps.append(w.step(f"{x} % {y}", x % y))
        x, y = y, x % y
    return w.worked(*steps, w.step(f"gcd({a}, {b})", gcd(a, b), "The last nonzero remainder:"))


def _lcm_work(a: int, b: int) -> w.Work:
    return w.worked(w.step(f"gcd({a}, {b})", gcd(a, b)), w.step(f"{a} * {b} // {gcd(a, b)}", lcm(a, b)))


def _common_factor_pair(rng: random.Random) -> tuple[int, int]:
    g, x, y = rng.randint(2, 15), rng.randint(1, 12), rng.randint(1, 12)
    return g * x, g * y


@bank.skill(FM, "greatest-common-factor", "Greatest common factor", 6, "integer")
def greatest_common_factor(rng: random.Random) -> Problem | None:
    a, b = _common_factor_pair(rng)
    if a == b:
        return None
    text = rng.choice(("What is the greatest common factor of {a} and {b}?", "Find the GCF of {a} and {b}."))
    return problem(text.format(a=a, b=b), str(gcd(a, b)), key=f"{min(a, b)},{max(a, b)}", a=a, b=b,
                   work=_gcf_work(a, b))


@bank.skill(FM, "least-common-multiple", "Least common multiple", 6, "integer")
def least_common_multiple(rng: random.Random) -> Problem | None:
    a, b = rng.randint(2, 24), rng.randint(2, 24)
    if a == b:
        return None
    text = rng.choice(("What is the least common multiple of {a} and {b}?", "Find the LCM of {a} and {b}."))
    return problem(text.format(a=a, b=b), str(lcm(a, b)), key=f"{min(a, b)},{max(a, b)}", a=a, b=b,
                   work=_lcm_work(a, b))


@bank.skill(FM, "is-prime", "Recognise prime numbers", 4, "text", YES_NO)
def prime_or_not(rng: random.Random) -> Problem | None:
    n = rng.randint(2, 250)
    want_prime = rng.random() < 0.5  # half primes; composites that are not obviously even or multiples of 5
    if is_prime(n) != want_prime or (not want_prime and (n % 2 == 0 or n % 5 == 0) and rng.random() < 0.8):
        return None
    text = rng.choice(("Is {n} a prime number? Answer yes or no.", "Is {n} prime? Answer yes or no."))
    answer, root = "yes" if want_prime else "no", isqrt(n)
    smallest = prime_powers(n)[0][0]
    divisor = [] if want_prime else [w.step(f"{n} % {smallest}", 0, f"{smallest} divides {n}:")]
    work = w.worked(w.step(f"isqrt({n})", root, "Divisors to try go up to"), *divisor,
                    w.step(f"all({n} % p for p in range(2, {root + 1}))", answer, "No divisor leaves 0:"),
                    program=f'n = {n}\nprint("yes" if all(n % p for p in range(2, int(n ** 0.5) + 1)) else "no")\n',
                    computational=False)
    return problem(text.format(n=n), answer, n=n, work=work)


@bank.skill(FM, "count-factors", "Count the factors of a number", 5, "integer")
def count_factors(rng: random.Random) -> Problem | None:
    n = rng.randint(6, 240)
    powers = prime_powers(n)
    work = w.worked(w.step(" * ".join(_power_text(p, e) for p, e in powers), n, "Prime factorization:"),
                    w.step(" * ".join(f"({e} + 1)" for _, e in powers), len(factors(n)), "Each exponent plus one:"))
    return problem(f"How many factors does {n} have?", str(len(factors(n))), n=n, work=work)


@bank.skill(FM, "largest-prime-factor", "Largest prime factor", 6, "integer")
def largest_prime_factor(rng: random.Random) -> Problem | None:
    n = rng.randint(12, 600)
    if is_prime(n):
        return None
    largest = max(p for p in factors(n) if is_prime(p))
    powers = prime_powers(n)
    work = w.worked(w.step(" * ".join(_power_text(p, e) for p, e in powers), n, "Prime factorization:"),
                    w.step(f"max({', '.join(str(p) for p, _ in powers)})" if len(powers) > 1 else str(largest), largest,
                           "The largest prime in it:"))
    return problem(f"What is the largest prime factor of {n}?", str(largest), n=n, work=work)


@bank.skill(FM, "divisibility", "Divisibility rules", 4, "text", YES_NO)
def divisibility(rng: random.Random) -> Problem | None:
    d = rng.choice((2, 3, 4, 5, 6, 9, 10))
    n = rng.randint(100, 9999)
    if (n % d == 0) != (rng.random() < 0.5):
        return None  # keep yes and no equally common
    text = rng.choice(("Is {n} divisible by {d}? Answer yes or no.", "Can {n} be divided by {d} with no remainder? "
                       "Answer yes or no."))
    answer = "yes" if n % d == 0 else "no"
    work = w.worked(w.step(f"{n} % {d}", n % d, "Remainder:"), w.step(f"{n} % {d} == 0", answer),
                    program=f'print("yes" if {n} % {d} == 0 else "no")\n', computational=False)
    return problem(text.format(n=n, d=d), answer, n=n, d=d, work=work)


@bank.skill(FM, "gcf-word-problem", "Greatest common factor word problems", 6, "integer")
def gcf_word_problem(rng: random.Random) -> Problem | None:
    a, b = _common_factor_pair(rng)
    if a == b:
        return None
    name = rng.choice(NAMES)
    text = (f"{name} has {a} red beads and {b} blue beads and puts them all into bags, with the same number of "
            f"red beads and the same number of blue beads in every bag. What is the greatest number of bags "
            f"{name} can fill?")
    return problem(text, str(gcd(a, b)), a=a, b=b, work=_gcf_work(a, b))


@bank.skill(FM, "lcm-word-problem", "Least common multiple word problems", 6, "integer")
def lcm_word_problem(rng: random.Random) -> Problem | None:
    a, b = rng.randint(2, 30), rng.randint(2, 30)
    if a == b:
        return None
    text = (f"A red light flashes every {a} seconds and a blue light flashes every {b} seconds. They have just "
            "flashed together. In how many seconds will they next flash together?")
    return problem(text, str(lcm(a, b)), a=a, b=b, work=_lcm_work(a, b))


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@bank.skill(SEQ, "arithmetic-next-term", "Continue an arithmetic pattern", 4, "integer")
def arithmetic_next_term(rng: random.Random) -> Problem | None:
    start, step = rng.randint(-20, 60), nonzero(rng, -12, 15)
    terms = tuple(start + i * step for i in range(4))
    text = rng.choice(("What is the next number in the pattern {t}, ...?", "What number comes next: {t}, ...?"))
    work = w.worked(w.step(f"{terms[1]} - {signed(terms[0])}", step, "Common difference:"),
                    w.step(f"{terms[3]} + {signed(step)}", start + 4 * step))
    return problem(text.format(t=", ".join(map(str, terms))), str(start + 4 * step), terms=terms, work=work)


@bank.skill(SEQ, "arithmetic-nth-term", "Find a term of an arithmetic sequence", 8, "integer")
def arithmetic_nth_term(rng: random.Random) -> Problem | None:
    start, step, n = rng.randint(-20, 30), nonzero(rng, -9, 12), rng.randint(8, 60)
    terms = tuple(start + i * step for i in range(4))
    text = f"An arithmetic sequence begins {', '.join(map(str, terms))}, ... What is its {ordinal(n)} term?"
    work = w.worked(w.step(f"{terms[1]} - {signed(terms[0])}", step, "Common difference:"),
                    w.step(f"{start} + ({n} - 1) * {signed(step)}", start + (n - 1) * step))
    return problem(text, str(start + (n - 1) * step), terms=terms, n=n, work=work)


@bank.skill(SEQ, "geometric-next-term", "Continue a geometric pattern", 8, "integer")
def geometric_next_term(rng: random.Random) -> Problem | None:
    if rng.random() < 0.2:  # halving patterns: start with a multiple of 16 so every term stays whole
        start = rng.randint(1, 25) * 16
        terms = tuple(start // 2**i for i in range(4))
        next_term = terms[-1] // 2
    else:
        start, ratio = rng.randint(1, 20), rng.choice((2, 3, 4, 5, -2, -3))
        terms = tuple(start * ratio**i for i in range(4))
        next_term = terms[-1] * ratio
    ratio = Fraction(terms[1], terms[0])
    work = w.worked(w.step(f"{terms[1]} / {terms[0]}", ratio, "Common ratio:"),
                    w.step(f"{terms[3]} * {signed(ratio)}", next_term))
    return problem(f"What is the next number in the pattern {', '.join(map(str, terms))}, ...?", str(next_term),
                   terms=terms, work=work)

"""KhanSkill domains "volume" (boxes, cubes, cylinders) and "unit-conversion" (metric, customary, time)."""

from __future__ import annotations

import random
from decimal import Decimal

from ntkeval.data.khanskill.core import Problem, SkillBank, problem
from ntkeval.data.khanskill.number_text import decimal_text
from ntkeval.data.khanskill.work import step, worked

bank = SkillBank()
VOL, UNIT = "volume", "unit-conversion"
LENGTHS = (("cm", "centimeters"), ("m", "meters"), ("in", "inches"), ("ft", "feet"))
Conversion = tuple[str, str, int]  # big unit, small unit, small units per big one
CONVERSIONS: dict[str, tuple[Conversion, ...]] = {
    "metric-length": (("kilometers", "meters", 1000), ("meters", "centimeters", 100),
                      ("centimeters", "millimeters", 10)),
    "metric-mass-and-capacity": (("kilograms", "grams", 1000), ("liters", "milliliters", 1000),
                                 ("grams", "milligrams", 1000)),
    "customary-length": (("feet", "inches", 12), ("yards", "feet", 3), ("yards", "inches", 36)),
    "customary-weight-and-capacity": (("pounds", "ounces", 16), ("gallons", "quarts", 4), ("quarts", "pints", 2),
                                      ("tons", "pounds", 2000)),
    "time-units": (("hours", "minutes", 60), ("minutes", "seconds", 60), ("days", "hours", 24), ("weeks", "days", 7)),
}
TITLES = {"metric-length": ("Convert metric lengths", 4), "metric-mass-and-capacity": ("Convert metric mass and "
          "capacity", 4), "customary-length": ("Convert customary lengths", 4), "customary-weight-and-capacity":
          ("Convert customary weight and capacity", 4), "time-units": ("Convert units of time", 4)}


@bank.skill(VOL, "box-volume", "Volume of a rectangular box", 5, "integer")
def box_volume(rng: random.Random) -> Problem | None:
    (length, width, height), (short, unit) = (rng.randint(2, 20) for _ in range(3)), rng.choice(LENGTHS)
    text = (f"A box is {length} {short} long, {width} {short} wide and {height} {short} tall. "
            f"What is its volume, in cubic {unit}?")
    work = worked(step(f"{length} * {width}", length * width, "The base:"),
                  step(f"{length * width} * {height}", length * width * height, "Times the height:"))
    return problem(text, str(length * width * height), key=",".join(map(str, sorted((length, width, height)))),
                   length=length, width=width, height=height, unit=unit, work=work)


@bank.skill(VOL, "cube-volume", "Volume and edge of a cube", 6, "integer")
def cube_volume(rng: random.Random) -> Problem | None:
    edge, (short, unit) = rng.randint(2, 40), rng.choice(LENGTHS)
    if rng.random() < 0.5:
        text = f"A cube has edges {edge} {short} long. What is its volume, in cubic {unit}?"
        return problem(text, str(edge**3), key=f"volume:{edge}", edge=edge, unit=unit,
                       work=worked(step(f"{edge} ** 3", edge**3)))
    text = f"A cube has a volume of {edge**3} cubic {unit}. How long is each edge, in {unit}?"
    work = worked(step(f"{edge**3} ** (1 / 3)", edge, "The cube root:"),
                  program=f"print(round({edge**3} ** (1 / 3)))\n")
    return problem(text, str(edge), key=f"edge:{edge}", volume=edge**3, unit=unit, work=work)


@bank.skill(VOL, "box-surface-area", "Surface area of a rectangular box", 7, "integer")
def box_surface_area(rng: random.Random) -> Problem | None:
    (length, width, height), (short, unit) = (rng.randint(2, 15) for _ in range(3)), rng.choice(LENGTHS)
    text = (f"A box is {length} {short} long, {width} {short} wide and {height} {short} tall. "
            f"What is its total surface area, in square {unit}?")
    area = 2 * (length * width + length * height + width * height)
    faces = (length * width, length * height, width * height)
    work = worked(step(f"{length} * {width}", faces[0], "Top:"), step(f"{length} * {height}", faces[1], "Front:"),
                  step(f"{width} * {height}", faces[2], "Side:"),
                  step(f"2 * ({faces[0]} + {faces[1]} + {faces[2]})", area, "Each face twice:"))
    return problem(text, str(area), key=",".join(map(str, sorted((length, width, height)))),
                   length=length, width=width, height=height, unit=unit, work=work)


@bank.skill(VOL, "cylinder-volume", "Volume of a cylinder in terms of π", 8, "expression")
def cylinder_volume(rng: random.Random) -> Problem | None:
    radius, height, (short, unit) = rng.randint(1, 12), rng.randint(1, 20), rng.choice(LENGTHS)
    text = (f"A cylinder has a radius of {radius} {short} and a height of {height} {short}. What is its volume, "
            f"in cubic {unit}? Give your answer in terms of π.")
    work = worked(step(f"{radius} ** 2", radius * radius, "The radius squared:"),
                  step(f"{radius * radius} * {height}", radius * radius * height, "Times the height:"),
                  step(f"{radius * radius * height} * pi", f"{radius * radius * height}π", "Times π:"),
                  program=f'print(f"{{{radius} ** 2 * {height}}}π")\n')
    return problem(text, f"{radius * radius * height}π", key=f"{radius},{height}", radius=radius, height=height,
                   unit=unit, work=work)


def _amount(rng: random.Random, factor: int, metric: bool) -> Decimal:
    """How many big units: whole, or with the decimals a learner meets for this unit pair."""
    whole = Decimal(rng.randint(2, 40))  # "1 hour" is a definition, not a conversion
    if metric and rng.random() < 0.5:
        return whole + Decimal(rng.randint(1, 99)).scaleb(-2).normalize()
    if factor % 2 == 0 and rng.random() < 0.3:
        return whole + Decimal("0.5")
    return whole


def _conversion_generator(table: tuple[Conversion, ...]):
    def generate(rng: random.Random) -> Problem | None:
        bigs, smalls, factor = rng.choice(table)
        metric = factor in (10, 100, 1000)
        big_amount = _amount(rng, factor, metric)
        small_amount = big_amount * factor
        if rng.random() < 0.5:  # big to small: multiply
            text = rng.choice((f"How many {smalls} are in {big_amount} {bigs}?",
                               f"Convert {big_amount} {bigs} to {smalls}."))
            return problem(text, decimal_text(small_amount), amount=big_amount, have=bigs, want=smalls,
                           work=worked(step(f"{decimal_text(big_amount)} * {factor}", decimal_text(small_amount),
                                            f"{factor} {smalls} in one of the {bigs}:")))
        text = rng.choice((f"How many {bigs} are in {decimal_text(small_amount)} {smalls}?",
                           f"Convert {decimal_text(small_amount)} {smalls} to {bigs}."))
        return problem(text, decimal_text(big_amount), amount=small_amount, have=smalls, want=bigs,
                       work=worked(step(f"{decimal_text(small_amount)} / {factor}", decimal_text(big_amount),
                                        f"{factor} {smalls} in one of the {bigs}:")))
    return generate


for _name, _table in CONVERSIONS.items():
    bank.skill(UNIT, _name, *TITLES[_name], "decimal")(_conversion_generator(_table))

MIXED = (("feet", "inch", "inches", 12), ("hours", "minute", "minutes", 60), ("pounds", "ounce", "ounces", 16),
         ("meters", "centimeter", "centimeters", 100), ("weeks", "day", "days", 7),
         ("gallons", "quart", "quarts", 4))  # (big unit, small unit: one, many, small units per big one)


@bank.skill(UNIT, "mixed-units", "Convert mixed units to one unit", 4, "integer")
def mixed_units(rng: random.Random) -> Problem | None:
    big, small_one, small, factor = rng.choice(MIXED)
    count, rest = rng.randint(2, 15), rng.randint(1, factor - 1)
    text = f"How many {small} are in {count} {big} {rest} {small_one if rest == 1 else small}?"
    work = worked(step(f"{count} * {factor}", count * factor, f"{factor} {small} in one of the {big}:"),
                  step(f"{count * factor} + {rest}", count * factor + rest))
    return problem(text, str(count * factor + rest), count=count, rest=rest, big=big, small=small, work=work)

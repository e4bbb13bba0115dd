"""KhanSkill domains "geometry" (perimeter, area, circles, Pythagoras) and "angles" (angle facts, polygons)."""

from __future__ import annotations

import random
from fractions import Fraction

from ntkeval.data.khanskill.core import Problem, SkillBank, problem
from ntkeval.data.khanskill.number_text import decimal_text
from ntkeval.data.khanskill.work import step, worked

bank = SkillBank()
GEO, ANG = "geometry", "angles"
UNITS = (("cm", "centimeters"), ("m", "meters"), ("in", "inches"), ("ft", "feet"))
ANGLE_TYPES = ("acute", "right", "obtuse", "straight", "reflex")


def pi_multiple(coefficient: int) -> str:
    """A multiple of pi as a student writes it: π, 6π."""
    return "π" if coefficient == 1 else f"{coefficient}π"


def right_triangle(rng: random.Random) -> tuple[int, int, int] | None:
    """Whole-number sides (a, b, c) of a right triangle from Euclid's formula, scaled; c stays at most 150."""
    m, n, k = rng.randint(2, 9), rng.randint(1, 8), rng.randint(1, 10)
    if n >= m:
        return None
    a, b, c = k * (m * m - n * n), k * 2 * m * n, k * (m * m + n * n)
    return (min(a, b), max(a, b), c) if c <= 150 else None


@bank.skill(GEO, "rectangle-perimeter", "Perimeter of a rectangle", 3, "integer")
def rectangle_perimeter(rng: random.Random) -> Problem | None:
    length, width, (short, unit) = rng.randint(3, 60), rng.randint(2, 40), rng.choice(UNITS)
    if width >= length:
        return None
    text = f"A rectangle is {length} {short} long and {width} {short} wide. What is its perimeter, in {unit}?"
    work = worked(step(f"{length} + {width}", length + width, "Length plus width:"),
                  step(f"2 * {length + width}", 2 * (length + width), "Twice around:"))
    return problem(text, str(2 * (length + width)), length=length, width=width, unit=unit, work=work)


@bank.skill(GEO, "rectangle-area", "Area of a rectangle", 3, "integer")
def rectangle_area(rng: random.Random) -> Problem | None:
    length, width, (short, unit) = rng.randint(3, 40), rng.randint(2, 30), rng.choice(UNITS)
    if width >= length:
        return None
    text = f"A rectangle is {length} {short} long and {width} {short} wide. What is its area, in square {unit}?"
    return problem(text, str(length * width), length=length, width=width, unit=unit,
                   work=worked(step(f"{length} * {width}", length * width)))


@bank.skill(GEO, "missing-side-from-area", "Find a side of a rectangle from its area", 4, "integer")
def missing_side_from_area(rng: random.Random) -> Problem | None:
    length, width, (short, unit) = rng.randint(3, 30), rng.randint(2, 20), rng.choice(UNITS)
    text = (f"A rectangle has an area of {length * width} square {unit} and a width of {width} {short}. "
            f"How long is it, in {unit}?")
    return problem(text, str(length), area=length * width, width=width, unit=unit,
                   work=worked(step(f"{length * width} / {width}", length)))


@bank.skill(GEO, "triangle-area", "Area of a triangle", 6, "decimal")
def triangle_area(rng: random.Random) -> Problem | None:
    base, height, (short, unit) = rng.randint(2, 30), rng.randint(2, 30), rng.choice(UNITS)
    text = (f"A triangle has a base of {base} {short} and a height of {height} {short}. "
            f"What is its area, in square {unit}?")
    work = worked(step(f"{base} * {height}", base * height, "Base times height:"),
                  step(f"{base * height} / 2", decimal_text(Fraction(base * height, 2)), "Half of it:"))
    return problem(text, decimal_text(Fraction(base * height, 2)), base=base, height=height, unit=unit, work=work)


@bank.skill(GEO, "trapezoid-area", "Area of a trapezoid", 7, "decimal")
def trapezoid_area(rng: random.Random) -> Problem | None:
    a, b, height, (short, unit) = rng.randint(2, 20), rng.randint(2, 20), rng.randint(2, 15), rng.choice(UNITS)
    if a == b:
        return None
    text = (f"A trapezoid has parallel sides of {a} {short} and {b} {short} and a height of {height} {short}. "
            f"What is its area, in square {unit}?")
    work = worked(step(f"{a} + {b}", a + b, "Sum of the parallel sides:"),
                  step(f"{a + b} * {height}", (a + b) * height),
                  step(f"{(a + b) * height} / 2", decimal_text(Fraction((a + b) * height, 2)), "Half of it:"))
    return problem(text, decimal_text(Fraction((a + b) * height, 2)), key=f"{min(a, b)},{max(a, b)},{height},{unit}",
                   a=a, b=b, height=height, unit=unit, work=work)


@bank.skill(GEO, "circle-circumference", "Circumference of a circle in terms of π", 7, "expression")
def circle_circumference(rng: random.Random) -> Problem | None:
    size, (short, _) = rng.randint(1, 40), rng.choice(UNITS)
    part = rng.choice(("radius", "diameter"))
    diameter = 2 * size if part == "radius" else size
    if diameter == 1:
        return None  # an answer of just "π" has no wrong answer of the same form for random_answer
    text = f"A circle has a {part} of {size} {short}. What is its circumference? Give your answer in terms of π."
    doubled = (step(f"2 * {size}", diameter, "The diameter:"),) if part == "radius" else ()
    work = worked(*doubled, step(f"{diameter} * pi", pi_multiple(diameter), "Diameter times π:"),
                  program=f'diameter = {"2 * " if doubled else ""}{size}\nprint(f"{{diameter}}π")\n')
    return problem(text, pi_multiple(diameter), key=f"{part}={size}", size=size, part=part, work=work)


@bank.skill(GEO, "circle-area", "Area of a circle in terms of π", 7, "expression")
def circle_area(rng: random.Random) -> Problem | None:
    radius, (short, _) = rng.randint(2, 30), rng.choice(UNITS)  # radius 1 has area "π": no wrong answer of its form
    part = rng.choice(("radius", "diameter"))
    size = radius if part == "radius" else 2 * radius
    text = f"A circle has a {part} of {size} {short}. What is its area? Give your answer in terms of π."
    halved = (step(f"{size} / 2", radius, "The radius:"),) if part == "diameter" else ()
    work = worked(*halved, step(f"{radius} ** 2", radius * radius, "The radius squared:"),
                  step(f"{radius * radius} * pi", pi_multiple(radius * radius), "Times π:"),
                  program=f'radius = {size}{" // 2" if halved else ""}\nprint(f"{{radius ** 2}}π")\n')
    return problem(text, pi_multiple(radius * radius), key=f"{part}={size}", size=size, part=part, work=work)


@bank.skill(GEO, "pythagorean-hypotenuse", "Find the hypotenuse with the Pythagorean theorem", 8, "integer")
def pythagorean_hypotenuse(rng: random.Random) -> Problem | None:
    if (sides := right_triangle(rng)) is None:
        return None
    a, b, c = sides
    text = f"A right triangle has legs of length {a} and {b}. How long is its hypotenuse?"
    work = worked(step(f"{a} ** 2 + {b} ** 2", c * c, "The square of the hypotenuse:"), step(f"isqrt({c * c})", c))
    return problem(text, str(c), a=a, b=b, work=work)


@bank.skill(GEO, "pythagorean-leg", "Find a leg with the Pythagorean theorem", 8, "integer")
def pythagorean_leg(rng: random.Random) -> Problem | None:
    if (sides := right_triangle(rng)) is None:
        return None
    a, b, c = sides
    known, missing = (a, b) if rng.random() < 0.5 else (b, a)
    text = f"A right triangle has a hypotenuse of length {c} and one leg of length {known}. How long is the other leg?"
    work = worked(step(f"{c} ** 2 - {known} ** 2", missing**2, "The square of the other leg:"),
                  step(f"isqrt({missing**2})", missing))
    return problem(text, str(missing), c=c, leg=known, work=work)


@bank.skill(ANG, "complementary-angles", "Complementary angles", 7, "integer")
def complementary_angles(rng: random.Random) -> Problem | None:
    a = rng.randint(1, 89)
    text = f"Two angles are complementary. One measures {a}°. What is the measure of the other, in degrees?"
    return problem(text, str(90 - a), a=a, work=worked(step(f"90 - {a}", 90 - a, "They add up to 90°:")))


@bank.skill(ANG, "supplementary-angles", "Supplementary angles", 7, "integer")
def supplementary_angles(rng: random.Random) -> Problem | None:
    a = rng.randint(1, 179)
    opening = rng.choice(("Two angles are supplementary.", "Two angles form a straight line."))
    text = f"{opening} One measures {a}°. What is the measure of the other, in degrees?"
    return problem(text, str(180 - a), a=a, work=worked(step(f"180 - {a}", 180 - a, "They add up to 180°:")))


@bank.skill(ANG, "triangle-angles", "The third angle of a triangle", 7, "integer")
def triangle_angles(rng: random.Random) -> Problem | None:
    a, b = rng.randint(10, 150), rng.randint(10, 150)
    if a + b >= 175:
        return None
    text = f"Two angles of a triangle measure {a}° and {b}°. What is the measure of the third angle, in degrees?"
    work = worked(step(f"{a} + {b}", a + b), step(f"180 - {a + b}", 180 - a - b, "The angles add up to 180°:"))
    return problem(text, str(180 - a - b), key=f"{min(a, b)},{max(a, b)}", a=a, b=b, work=work)


@bank.skill(ANG, "angles-at-a-point", "Angles around a point", 7, "integer")
def angles_at_a_point(rng: random.Random) -> Problem | None:
    a, b = rng.randint(20, 200), rng.randint(20, 200)
    if a + b >= 340:
        return None
    text = (f"Three angles meet at a point. Two of them measure {a}° and {b}°. "
            "What is the measure of the third angle, in degrees?")
    work = worked(step(f"{a} + {b}", a + b), step(f"360 - {a + b}", 360 - a - b, "The angles add up to 360°:"))
    return problem(text, str(360 - a - b), key=f"{min(a, b)},{max(a, b)}", a=a, b=b, work=work)


@bank.skill(ANG, "classify-angles", "Classify angles", 4, "text", ANGLE_TYPES)
def classify_angles(rng: random.Random) -> Problem | None:
    a = rng.randint(1, 359)
    kind = "acute" if a < 90 else "right" if a == 90 else "obtuse" if a < 180 else "straight" if a == 180 else "reflex"
    text = f"An angle measures {a}°. Is it acute, right, obtuse, straight or reflex?"
    program = (f'a = {a}\nprint("acute" if a < 90 else "right" if a == 90 else "obtuse" if a < 180 '
               'else "straight" if a == 180 else "reflex")\n')
    work = worked(step(f"{a} - 90", a - 90, "Against a right angle:"), step(f"{a} - 180", a - 180, "Against a straight "
                  "angle:"), step(f"{a}°", kind, "So the angle is"), program=program, computational=False)
    return problem(text, kind, a=a, work=work)


@bank.skill(ANG, "polygon-angle-sum", "Sum of the interior angles of a polygon", 8, "integer")
def polygon_angle_sum(rng: random.Random) -> Problem | None:
    sides = rng.randint(3, 120)
    work = worked(step(f"{sides} - 2", sides - 2, "Triangles from one corner:"),
                  step(f"{sides - 2} * 180", (sides - 2) * 180))
    return problem(f"What is the sum of the interior angles of a polygon with {sides} sides, in degrees?",
                   str((sides - 2) * 180), n=sides, work=work)

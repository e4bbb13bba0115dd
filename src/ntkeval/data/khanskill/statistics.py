"""KhanSkill domains "statistics" (mean, median, mode, range), "probability" and "coordinate-plane"."""

from __future__ import annotations

import random
from fractions import Fraction

from ntkeval.data.khanskill.core import Problem, SkillBank, fraction_text, problem, terminating
from ntkeval.data.khanskill.number_text import decimal_text, shown, signed
from ntkeval.data.khanskill.work import step, worked

bank = SkillBank()
STAT, PROB, COORD = "statistics", "probability", "coordinate-plane"
COLORS = ("red", "blue", "green")
QUADRANTS = ("I", "II", "III", "IV")


def _data(rng: random.Random, low: int = 4, high: int = 7) -> tuple[int, ...]:
    return tuple(rng.randint(1, 50) for _ in range(rng.randint(low, high)))


def _listed(values: tuple[int, ...]) -> str:
    return ", ".join(map(str, values))


def _bag_key(values: tuple[int, ...]) -> str:
    return ",".join(map(str, sorted(values)))  # the same numbers in another order pose the same problem


@bank.skill(STAT, "mean", "Mean of a data set", 6, "decimal")
def mean(rng: random.Random) -> Problem | None:
    data = _data(rng)
    average = Fraction(sum(data), len(data))
    if not terminating(average) or average.denominator > 4:
        return None
    work = worked(step(" + ".join(map(str, data)), sum(data), "The total:"),
                  step(f"{sum(data)} / {len(data)}", decimal_text(average), f"Shared among {len(data)} values:"))
    return problem(f"What is the mean of {_listed(data)}?", decimal_text(average), key=_bag_key(data), data=data,
                   work=work)


@bank.skill(STAT, "median", "Median of a data set", 6, "decimal")
def median(rng: random.Random) -> Problem | None:
    data = _data(rng, 5, 8)
    ordered, half = sorted(data), len(data) // 2
    middle = Fraction(ordered[half]) if len(data) % 2 else Fraction(ordered[half - 1] + ordered[half], 2)
    middle_step = (step(f"{ordered[half]}", decimal_text(middle), f"The middle value, number {half + 1}:")
                   if len(data) % 2 else step(f"({ordered[half - 1]} + {ordered[half]}) / 2", decimal_text(middle),
                                              "The mean of the two middle values:"))
    work = worked(step(f"sorted(({_listed(data)}))", f"({_listed(tuple(ordered))})", "In order:"), middle_step)
    return problem(f"What is the median of {_listed(data)}?", decimal_text(middle), key=_bag_key(data), data=data,
                   work=work)


@bank.skill(STAT, "mode", "Mode of a data set", 6, "integer")
def mode(rng: random.Random) -> Problem | None:
    others = rng.sample(range(1, 40), rng.randint(3, 6))
    most, repeats = others.pop(), rng.randint(2, 3)
    data = others + [most] * repeats
    rng.shuffle(data)
    work = worked(step(f"sorted(({_listed(tuple(data))}))", f"({_listed(tuple(sorted(data)))})", "In order:"),
                  step(str(most), most, f"The value that appears {repeats} times:"))
    return problem(f"What is the mode of {_listed(tuple(data))}?", str(most), key=_bag_key(tuple(data)),
                   data=tuple(data), work=work)


@bank.skill(STAT, "range", "Range of a data set", 6, "integer")
def data_range(rng: random.Random) -> Problem | None:
    data = _data(rng, 5, 8)
    work = worked(step(f"max({_listed(data)})", max(data)), step(f"min({_listed(data)})", min(data)),
                  step(f"{max(data)} - {min(data)}", max(data) - min(data)))
    return problem(f"What is the range of {_listed(data)}?", str(max(data) - min(data)), key=_bag_key(data), data=data,
                   work=work)


@bank.skill(STAT, "missing-value-for-mean", "Find a missing value from the mean", 7, "integer")
def missing_value_for_mean(rng: random.Random) -> Problem | None:
    known, average = _data(rng, 3, 5), rng.randint(10, 40)
    missing = average * (len(known) + 1) - sum(known)
    if missing < 0:
        return None
    text = (f"The mean of {len(known) + 1} numbers is {average}. {len(known)} of them are {_listed(known)}. "
            "What is the other number?")
    total = average * (len(known) + 1)
    work = worked(step(f"{average} * {len(known) + 1}", total, "The total of all the numbers:"),
                  step(" + ".join(map(str, known)), sum(known), "The known numbers:"),
                  step(f"{total} - {sum(known)}", missing))
    return problem(text, str(missing), key=f"{_bag_key(known)}:{average}", known=known, average=average, work=work)


def _bag(rng: random.Random) -> tuple[int, int, int]:
    return rng.randint(1, 12), rng.randint(1, 12), rng.randint(1, 12)


def _bag_text(counts: tuple[int, int, int]) -> str:
    return f"A bag has {counts[0]} red, {counts[1]} blue and {counts[2]} green marbles. One marble is picked at random."


@bank.skill(PROB, "single-event", "Probability of a single event", 7, "fraction")
def single_event(rng: random.Random) -> Problem | None:
    counts, color = _bag(rng), rng.randrange(3)
    text = f"{_bag_text(counts)} What is the probability that it is {COLORS[color]}?"
    work = worked(step(" + ".join(map(str, counts)), sum(counts), "Marbles in all:"),
                  step(f"{counts[color]} / {sum(counts)}", fraction_text(Fraction(counts[color], sum(counts)))))
    return problem(text, fraction_text(Fraction(counts[color], sum(counts))), red=counts[0], blue=counts[1],
                   green=counts[2], color=COLORS[color], work=work)


@bank.skill(PROB, "complement", "Probability of an event not happening", 7, "fraction")
def complement(rng: random.Random) -> Problem | None:
    counts, color = _bag(rng), rng.randrange(3)
    text = f"{_bag_text(counts)} What is the probability that it is not {COLORS[color]}?"
    others = sum(counts) - counts[color]
    work = worked(step(" + ".join(map(str, counts)), sum(counts), "Marbles in all:"),
                  step(f"{sum(counts)} - {counts[color]}", others, f"Marbles that are not {COLORS[color]}:"),
                  step(f"{others} / {sum(counts)}", fraction_text(1 - Fraction(counts[color], sum(counts)))))
    return problem(text, fraction_text(1 - Fraction(counts[color], sum(counts))), red=counts[0], blue=counts[1],
                   green=counts[2], color=COLORS[color], work=work)


@bank.skill(PROB, "independent-events", "Probability of two independent events", 7, "fraction")
def independent_events(rng: random.Random) -> Problem | None:
    red, blue = rng.randint(1, 12), rng.randint(1, 12)
    first, second = rng.choice((("red", "red"), ("red", "blue"), ("blue", "blue")))
    share = {"red": Fraction(red, red + blue), "blue": Fraction(blue, red + blue)}
    asked = f"both are {first}" if first == second else f"the first is {first} and the second is {second}"
    text = (f"A bag has {red} red and {blue} blue marbles. A marble is picked at random, put back, and a second "
            f"marble is picked. What is the probability that {asked}?")
    count = {"red": red, "blue": blue}
    work = worked(step(f"{count[first]} / {red + blue}", share[first], f"First {first}:"),
                  step(f"{count[second]} / {red + blue}", share[second], f"Second {second}:"),
                  step(f"{shown(share[first])} * {shown(share[second])}", fraction_text(share[first] * share[second])))
    return problem(text, fraction_text(share[first] * share[second]), red=red, blue=blue, first=first, second=second,
                   work=work)


@bank.skill(PROB, "expected-count", "Predict outcomes from a probability", 7, "integer")
def expected_count(rng: random.Random) -> Problem | None:
    sections = rng.choice((4, 5, 6, 8, 10))
    blue, spins = rng.randint(1, sections - 1), sections * rng.randint(2, 30)
    text = (f"A spinner has {sections} equal sections and {blue} of them are blue. It is spun {spins} times. "
            "How many times would you expect it to land on blue?")
    work = worked(step(f"{spins} / {sections}", spins // sections, "Spins per section:"),
                  step(f"{spins // sections} * {blue}", spins * blue // sections))
    return problem(text, str(spins * blue // sections), sections=sections, blue=blue, spins=spins, work=work)


def _point(rng: random.Random, low: int = -10, high: int = 10) -> tuple[int, int]:
    return rng.randint(low, high), rng.randint(low, high)


def point_text(x, y) -> str:
    return f"({decimal_text(Fraction(x))}, {decimal_text(Fraction(y))})"


@bank.skill(COORD, "quadrants", "Quadrants of the coordinate plane", 6, "text", QUADRANTS)
def quadrants(rng: random.Random) -> Problem | None:
    x, y = _point(rng)
    if x == 0 or y == 0:
        return None
    quadrant = ("I" if y > 0 else "IV") if x > 0 else ("II" if y > 0 else "III")
    work = worked(step(f"{x} > 0", str(x > 0), "x is positive:"), step(f"{y} > 0", str(y > 0), "y is positive:"),
                  step(f"({x}, {y})", quadrant, "So the quadrant is"), computational=False,
                  program=f'x, y = {x}, {y}\n'
                          'print(("I" if y > 0 else "IV") if x > 0 else ("II" if y > 0 else "III"))\n')
    return problem(f"In which quadrant is the point ({x}, {y})? Answer I, II, III or IV.", quadrant, x=x, y=y,
                   work=work)


@bank.skill(COORD, "reflect-points", "Reflect a point over an axis", 8, "point")
def reflect_points(rng: random.Random) -> Problem | None:
    (x, y), axis = _point(rng), rng.choice(("x-axis", "y-axis"))
    image = (x, -y) if axis == "x-axis" else (-x, y)
    text = f"The point ({x}, {y}) is reflected over the {axis}. What are the coordinates of its image?"
    flipped = f"({x}, -{signed(y)})" if axis == "x-axis" else f"(-{signed(x)}, {y})"
    image_code = "x, -y" if axis == "x-axis" else "-x, y"
    program = f'x, y = {x}, {y}\nx, y = {image_code}\nprint(f"({{x}}, {{y}})")\n'
    work = worked(step(flipped, point_text(*image), f"Reflecting over the {axis} negates the other coordinate:"),
                  program=program)
    return problem(text, point_text(*image), x=x, y=y, axis=axis, work=work)


@bank.skill(COORD, "translate-points", "Translate a point", 6, "point")
def translate_points(rng: random.Random) -> Problem | None:
    (x, y), dx, dy = _point(rng), rng.randint(1, 9), rng.randint(1, 9)
    across, up = rng.choice(("left", "right")), rng.choice(("up", "down"))
    end = (x + dx if across == "right" else x - dx, y + dy if up == "up" else y - dy)
    text = f"The point ({x}, {y}) is moved {dx} units {across} and {dy} units {up}. Where does it end up?"
    moved = f"({x} {'+' if across == 'right' else '-'} {dx}, {y} {'+' if up == 'up' else '-'} {dy})"
    work = worked(step(moved, point_text(*end)), program=f'x, y = {moved}\nprint(f"({{x}}, {{y}})")\n')
    return problem(text, point_text(*end), x=x, y=y, dx=dx, dy=dy, across=across, up=up, work=work)


@bank.skill(COORD, "midpoint", "Midpoint of a segment", 8, "point")
def midpoint(rng: random.Random) -> Problem | None:
    (x1, y1), (x2, y2) = _point(rng), _point(rng)
    if (x1, y1) == (x2, y2):
        return None
    text = f"What is the midpoint of the segment from ({x1}, {y1}) to ({x2}, {y2})?"
    program = (f"from fractions import Fraction\n"
               f"x, y = Fraction({x1} + {signed(x2)}, 2), Fraction({y1} + {signed(y2)}, 2)\n"
               'print(f"({float(x):g}, {float(y):g})")\n')
    work = worked(step(f"(({x1} + {signed(x2)}) / 2, ({y1} + {signed(y2)}) / 2)",
                       point_text(Fraction(x1 + x2, 2), Fraction(y1 + y2, 2)), "Average the coordinates:"),
                  program=program)
    return problem(text, point_text(Fraction(x1 + x2, 2), Fraction(y1 + y2, 2)), x1=x1, y1=y1, x2=x2, y2=y2,
                   work=work)


@bank.skill(COORD, "slope", "Slope of a line through two points", 8, "fraction")
def slope(rng: random.Random) -> Problem | None:
    (x1, y1), (x2, y2) = _point(rng), _point(rng)
    if x1 == x2:
        return None
    text = f"What is the slope of the line through ({x1}, {y1}) and ({x2}, {y2})?"
    work = worked(step(f"{y2} - {signed(y1)}", y2 - y1, "Rise:"), step(f"{x2} - {signed(x1)}", x2 - x1, "Run:"),
                  step(f"{y2 - y1} / {signed(x2 - x1)}", fraction_text(Fraction(y2 - y1, x2 - x1))))
    return problem(text, fraction_text(Fraction(y2 - y1, x2 - x1)), x1=x1, y1=y1, x2=x2, y2=y2, work=work)


@bank.skill(COORD, "grid-distance", "Distance between points on a grid line", 6, "integer")
def grid_distance(rng: random.Random) -> Problem | None:
    (x1, y1), other = _point(rng), rng.randint(-10, 10)
    if rng.random() < 0.5:
        x2, y2 = x1, other  # on one vertical line
    else:
        x2, y2 = other, y1
    if (x1, y1) == (x2, y2):
        return None
    text = f"How far apart are the points ({x1}, {y1}) and ({x2}, {y2})?"
    work = worked(step(f"abs({x1} - {signed(x2)}) + abs({y1} - {signed(y2)})", abs(x1 - x2) + abs(y1 - y2),
                       "Along one grid line:"))
    return problem(text, str(abs(x1 - x2) + abs(y1 - y2)), x1=x1, y1=y1, x2=x2, y2=y2, work=work)

"""Checks of user arguments, shared by every module of the project.

Each check returns the value in its canonical type (`float`, `int`, `bool`)
or raises in Keras' own words: "Argument `name` should be ... Received:
name=value": an `ArgumentTypeError` for a value of the wrong type and a
`ValueError` for one of the right type out of range. A bool is never
accepted as a number, although Python counts it as one: `steps=True` is a
mistake, not `steps=1`.
"""

import math
import numbers

import numpy as np


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type.

    Both a `TypeError`, as Python's convention asks, and a `ValueError`, as
    Keras raises for every bad argument, so that callers catching either
    see it (numpy's `AxisError` is both a `ValueError` and an `IndexError`
    for the same reason).
    """


def _fail(name, what, value, error=ValueError):
    raise error(
        f"Argument `{name}` should be {what}. Received: {name}={value!r}"
    )


def _interval(low, high, closed):
    left = "[" if closed in ("both", "left") else "("
    right = "]" if closed in ("both", "right") else ")"
    return f"{left}{low:g}, {high:g}{right}"


def check_number(
    name, value, *, integer=False, low=None, high=None, closed="both",
    allow_none=False,
):
    """Returns `value` as a finite float (or int), checking its range.

    Example:

    >>> check_number("alpha", 0.05, low=0, high=1, closed="neither")
    0.05
    >>> check_number("steps", True, integer=True)
    Traceback (most recent call last):
    ...
    keras_drelu.arguments.ArgumentTypeError: Argument `steps` should be an integer. Received: steps=True

    Args:
        name: The argument's name, for the error message.
        value: The value to check.
        integer: Whether `value` must be an integer. Defaults to `False`.
        low: Optional lower bound. Defaults to `None`.
        high: Optional upper bound. Defaults to `None`.
        closed: Which bounds are allowed values: `"both"`, `"left"`,
            `"right"` or `"neither"`. Defaults to `"both"`.
        allow_none: Whether `None` passes (and is returned). Defaults to
            `False`.

    Returns:
        `value` as an `int` (with `integer`) or a `float`.
    """
    if value is None and allow_none:
        return None
    kind = "an integer" if integer else "a number"
    if low is not None and high is not None:
        what = f"{kind} in {_interval(low, high, closed)}"
    elif low is not None:
        sign = ">=" if closed in ("both", "left") else ">"
        what = f"{kind} {sign} {low:g}"
    elif high is not None:
        sign = "<=" if closed in ("both", "right") else "<"
        what = f"{kind} {sign} {high:g}"
    else:
        what = kind if integer else "a finite number"
    wanted = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, wanted):
        # `None` is worth naming only to a value of the wrong type; a number
        # out of range is told the range.
        _fail(name, what + (" or None" if allow_none else ""), value,
              ArgumentTypeError)
    if not integer and not math.isfinite(value):
        _fail(name, what, value)
    inclusive_low = closed in ("both", "left")
    inclusive_high = closed in ("both", "right")
    if low is not None and (value < low or (value == low and not inclusive_low)):
        _fail(name, what, value)
    if high is not None and (
        value > high or (value == high and not inclusive_high)
    ):
        _fail(name, what, value)
    return int(value) if integer else float(value)


def check_positive(name, value, *, integer=False, allow_none=False):
    """Returns `value` if it is a finite number (or integer) above zero.

    Example:

    >>> check_positive("eps", 0.1)
    0.1
    >>> check_positive("batch_size", 0, integer=True)
    Traceback (most recent call last):
    ...
    ValueError: Argument `batch_size` should be a positive integer. Received: batch_size=0
    """
    if value is None and allow_none:
        return None
    kind = "a positive integer" if integer else "a positive number"
    try:
        return check_number(
            name, value, integer=integer, low=0, closed="neither"
        )
    except (TypeError, ValueError) as error:
        none = " or None" if allow_none and isinstance(error, TypeError) else ""
        _fail(name, kind + none, value, type(error))


def check_non_negative(name, value, *, integer=False, allow_none=False):
    """Returns `value` if it is a finite number (or integer) `>= 0`.

    Example:

    >>> check_non_negative("lam", 0)
    0.0
    """
    if value is None and allow_none:
        return None
    kind = "a non-negative integer" if integer else "a non-negative number"
    try:
        return check_number(name, value, integer=integer, low=0)
    except (TypeError, ValueError) as error:
        none = " or None" if allow_none and isinstance(error, TypeError) else ""
        _fail(name, kind + none, value, type(error))


def check_bool(name, value):
    """Returns `value` if it is a bool.

    Example:

    >>> check_bool("from_logits", 1)
    Traceback (most recent call last):
    ...
    keras_drelu.arguments.ArgumentTypeError: Argument `from_logits` should be a bool. Received: from_logits=1
    """
    if not isinstance(value, bool):
        _fail(name, "a bool", value, ArgumentTypeError)
    return value


def check_seed(name, value):
    """Returns `value` if it is `None` or an integer (not a bool).

    Example:

    >>> check_seed("seed", 3), check_seed("seed", None)
    (3, None)
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        _fail(name, "an integer or None", value, ArgumentTypeError)
    return int(value)


def check_choice(name, value, choices):
    """Returns `value` if it is one of `choices` (a tuple, or a dict's keys).

    Example:

    >>> check_choice("norm", "l3", ("linf", "l2"))
    Traceback (most recent call last):
    ...
    ValueError: Argument `norm` should be one of ('linf', 'l2'). Received: norm='l3'
    """
    choices = tuple(choices)
    try:
        known = value in choices
    except TypeError:
        known = False
    if not known:
        _fail(name, f"one of {choices}", value)
    return value


def check_inputs_and_labels(x, y):
    """`x` as a non-empty float32 batch and `y` as one integer label each.

    Example:

    >>> x, y = check_inputs_and_labels([[0.0, 1.0]], [3])
    >>> x.dtype, y.tolist()
    (dtype('float32'), [3])

    Args:
        x: A batch of inputs, array-like.
        y: Integer labels, one per input.

    Returns:
        `(x, y)` as numpy arrays.
    """
    x = np.asarray(x, dtype="float32")
    y = np.asarray(y)
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(
            "Argument `x` should be a non-empty batch of inputs. Received: "
            f"x.shape={x.shape}"
        )
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            "Argument `y` should hold one integer class label per input. "
            f"Received: y.shape={y.shape}, y.dtype={y.dtype}, "
            f"x.shape={x.shape}"
        )
    return x, y


def check_clip_values(clip_values):
    """Returns `clip_values` as a pair of floats `(low, high)`, low < high.

    Example:

    >>> check_clip_values([0, 255])
    (0.0, 255.0)
    >>> check_clip_values((1, 0))
    Traceback (most recent call last):
    ...
    ValueError: Argument `clip_values` should be a pair `(low, high)` of numbers with low < high. Received: clip_values=(1, 0)
    """
    what = (
        "Argument `clip_values` should be a pair `(low, high)` of numbers "
        f"with low < high. Received: clip_values={clip_values!r}"
    )
    try:
        low, high = clip_values
        low = check_number("clip_values[0]", low)
        high = check_number("clip_values[1]", high)
    except (TypeError, ValueError) as error:
        raise ArgumentTypeError(what) from error
    if not low < high:
        raise ValueError(what)
    return low, high


def check_within(x, clip_values):
    """Raises unless every entry of the array `x` is finite and within range.

    Example:

    >>> check_within(np.array([[0.5, np.nan]]), (0.0, 1.0))
    Traceback (most recent call last):
    ...
    ValueError: Inputs should be finite numbers. Received: x[0, 1]=nan (1 non-finite entry)
    """
    low, high = clip_values
    if not x.size:
        return
    finite = np.isfinite(x)
    if not finite.all():
        where = np.argwhere(~finite)
        first = tuple(int(i) for i in where[0])
        count = len(where)
        raise ValueError(
            "Inputs should be finite numbers. Received: "
            f"x[{', '.join(map(str, first))}]={x[first]} ({count} non-finite "
            f"entr{'y' if count == 1 else 'ies'})"
        )
    if x.min() < low - 1e-6 or x.max() > high + 1e-6:
        raise ValueError(
            f"Inputs should lie within clip_values={tuple(clip_values)}. "
            f"Received: x in [{x.min()}, {x.max()}]"
        )


def check_labels(y, n_classes):
    """Raises unless every label of `y` is a class of an `n_classes` model.

    Example:

    >>> check_labels(np.array([3, 12]), 10)
    Traceback (most recent call last):
    ...
    ValueError: Argument `y` should hold class indices in [0, 10), the classes of a model with 10 outputs. Received: y[1]=12 (1 label out of range)
    """
    bad = (y < 0) | (y >= n_classes)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        count = int(bad.sum())
        raise ValueError(
            f"Argument `y` should hold class indices in [0, {n_classes}), the "
            f"classes of a model with {n_classes} outputs. Received: "
            f"y[{first}]={y[first]} ({count} label{'' if count == 1 else 's'} "
            "out of range)"
        )

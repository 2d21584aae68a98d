"""The exceptions labkit raises, so callers can tell bad input from bad luck."""


class ConfigError(ValueError):
    """An argument is outside what the model allows; the message says what is."""


class Unavailable(Exception):
    """The system cannot serve the request now (no quorum, no live node)."""


class InvariantViolation(AssertionError):
    """A safety property of a protocol was broken; the message names the rule."""


class RequestTimeout(TimeoutError):
    """A call got no reply within its timeout (the request may still have run)."""


class UnknownMessage(LookupError):
    """A node received a message kind it has no handler for."""


# Argument checks shared by every public constructor and verb. Each raises
# ConfigError with a message naming the argument, the value and what is allowed.

def require_int(name: str, value, *, minimum: int | None = None,
                maximum: int | None = None) -> int:
    """Return value if it is an int (not a bool) at least minimum and at most
    maximum."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be <= {maximum:,}, got {value:,}")
    return value


def require_number(name: str, value, *, minimum: float | None = None,
                   positive: bool = False) -> float:
    """Return value as a float if it is a finite real number in range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ConfigError(f"{name} must be > 0, got {value}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def require_probability(name: str, value) -> float:
    """Return value if it is a probability in [0, 1]."""
    value = require_number(name, value)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be a probability in [0, 1], got {value}")
    return value

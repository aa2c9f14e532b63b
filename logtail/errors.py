"""The exceptions logtail raises; the CLI turns each into one line on stderr and an exit status."""


class LogtailError(Exception):
    """Base class: something the user should read, without a traceback."""


class ConfigError(LogtailError):
    """Raised while building the configuration or opening the inputs: a usage error (exit status 2)."""


class StdoutClosed(LogtailError):
    """Raised by the output when whoever reads logtail's stdout has gone away (EPIPE)."""

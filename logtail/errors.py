"""The exceptions logtail raises; the CLI turns each into one line on stderr and an exit status."""


class LogtailError(Exception):
    """Base class: something the user should read, without a traceback."""


class ConfigError(LogtailError):
    """Raised while building the configuration or opening the inputs: a usage error (exit status 2)."""


class StdoutClosed(LogtailError):
    """Raised by the output when stdout cannot take more: its reader went away (EPIPE), or a write
    failed otherwise (ENOSPC on a full disk, EIO)."""

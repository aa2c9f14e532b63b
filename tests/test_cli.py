"""In-process tests of the command line: parsing, LOGTAIL_* variables and usage errors, through ``main``.

The end-to-end tier proves the same messages come out of a real process
(``test_directory_as_path_is_a_usage_error``); here each case costs no interpreter start.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from logtail import cli
from logtail.config import Format, StartAt
from logtail.stops import Exit


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``logtail ARGV`` in this process; return the exit status, stdout and stderr."""
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def assert_usage_error(status: int, out: str, err: str, *needles: tuple[str, ...]) -> None:
    """Exit 2, nothing on stdout, one stderr line holding a word of each group of ``needles``."""
    assert status == Exit.USAGE, err
    assert out == ""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("logtail: error: ")
    assert "Traceback" not in err
    for group in needles:
        assert any(word.lower() in lines[0].lower() for word in group), (group, err)


def parsed_options(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """What the command line (and LOGTAIL_* variables) hand to build_config, without running anything."""
    seen: dict[str, object] = {}

    class Parsed(Exception):
        pass

    def capture(paths: tuple[str, ...], command_args: tuple[str, ...], **options: object) -> object:
        seen.update(options, paths=paths)
        raise Parsed

    monkeypatch.setattr(cli, "build_config", capture)
    with pytest.raises(Parsed):
        cli.command.main(args=[], standalone_mode=False)
    return seen


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "a.log"
    path.write_text("x\n")
    return path


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["--lines", "abc"], ("--lines", "-n")),
        (["-n", "1.5"], ("--lines", "-n")),
        (["--max-line-bytes", "0"], ("--max-line-bytes",)),
        (["--max-line-bytes", "many"], ("--max-line-bytes",)),
        (["--poll-interval", "-1"], ("--poll-interval",)),
        (["--poll-interval", "soon"], ("--poll-interval",)),
        (["--format", "xml"], ("--format",)),
        (["--log-format", "xml"], ("--log-format",)),
        (["--log-level", "loud"], ("--log-level",)),
        (["--no-such-option"], ("--no-such-option",)),
        (["--prefix", "{nope} "], ("--prefix", "{nope}")),
        (["--prefix", "[app]\n"], ("--prefix", "newline")),
        (["--prefix", "[{name}] ", "--format", "json"], ("--prefix", "json")),
        (["--until", "(unclosed"], ("--until",)),
        (["--exec"], ("--exec",)),
        (["--max-files", "0"], ("--max-files",)),
        (["--pid", "0"], ("--pid",)),
        (["--drain-timeout", "-1"], ("--drain-timeout",)),
        (["--multiline", "start:(unclosed"], ("--multiline",)),
        (["--multiline", "perl"], ("--multiline", "preset")),
        (["--multiline", "=java"], ("--multiline", "name")),
        (["--multiline-max-lines", "0"], ("--multiline-max-lines",)),
        (["--multiline-max-lines", "-3"], ("--multiline-max-lines",)),
        (["--multiline-max-bytes", "0"], ("--multiline-max-bytes",)),
        (["--multiline-timeout", "0"], ("--multiline-timeout",)),
        (["--multiline-timeout", "-1"], ("--multiline-timeout",)),
    ],
)
def test_bad_option_value_is_a_usage_error(
    log_file: Path, args: list[str], mentions: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad option value: one line naming the option, exit 2, no traceback."""
    assert_usage_error(*run_main([*args, str(log_file)], capsys), mentions)


def test_empty_name_is_a_usage_error(log_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`NAME=` with an empty name: one line naming the argument."""
    assert_usage_error(*run_main([f"={log_file}"], capsys), (str(log_file),), ("name",))


def test_no_path_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No PATH, neither as arguments nor in LOGTAIL_FILES."""
    monkeypatch.delenv("LOGTAIL_FILES", raising=False)
    assert_usage_error(*run_main([], capsys), ("PATH",))


def test_directory_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A directory given as PATH names itself and suggests a glob."""
    assert_usage_error(*run_main([str(tmp_path)], capsys), (str(tmp_path),), ("directory",))


def test_checkpoint_in_a_missing_directory_is_a_usage_error(
    log_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--checkpoint whose directory does not exist fails at start, not at the first save."""
    where = tmp_path / "nowhere" / "state.json"
    assert_usage_error(*run_main(["--checkpoint", str(where), str(log_file)], capsys), ("--checkpoint",))


def test_version_and_help_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the version; --help lists the options; both exit 0."""
    status, out, _ = run_main(["--version"], capsys)
    assert status == 0
    assert "logtail" in out
    status, out, _ = run_main(["--help"], capsys)
    assert status == 0
    assert "--checkpoint" in out
    assert "LOGTAIL_" in out


@pytest.mark.parametrize(
    ("arg", "name", "path"),
    [
        ("app=/var/log/app.log", "app", "/var/log/app.log"),
        ("/var/log/a=b.log", None, "/var/log/a=b.log"),
        ("./a=b.log", None, "a=b.log"),
        ("/var/log/*.log", None, "/var/log/*.log"),
    ],
)
def test_name_equals_path_is_split_only_before_any_slash(arg: str, name: str | None, path: str) -> None:
    """`NAME=PATH` names a stream only when the part before '=' has no '/'."""
    spec = cli._stream(arg)
    assert spec.name == name
    assert spec.pattern.endswith(path.lstrip("."))


def test_options_come_from_the_environment(log_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every option can be given as LOGTAIL_<OPTION>; the paths as LOGTAIL_FILES."""
    monkeypatch.setenv("LOGTAIL_PREFIX", "[{name}] ")
    monkeypatch.setenv("LOGTAIL_LINES", "5")
    monkeypatch.setenv("LOGTAIL_FILES", str(log_file))
    seen = parsed_options(monkeypatch)
    assert seen["prefix"] == "[{name}] "
    assert seen["start_at"] == StartAt(5, from_start=False)
    assert seen["paths"] == (str(log_file),)


def test_build_config_fills_in_defaults(log_file: Path) -> None:
    """What the CLI hands the app: absolute paths, the format, the default rotated names."""
    options = {"prefix": None, "until": None, "checkpoint": None, "rotated": ()}
    config = cli.build_config((str(log_file),), (), run_command=False, fmt="json", **options)
    assert config.format is Format.JSON
    assert config.streams[0].pattern == str(log_file)
    assert config.rotated_patterns == ("{path}.[0-9]*", "{path}-[0-9]*")


def test_multiline_per_stream(log_file: Path) -> None:
    """`--multiline NAME=MODE` is for one stream; a mode without a name for every other one."""
    options = {"prefix": None, "until": None, "checkpoint": None, "rotated": ()}
    config = cli.build_config(
        (f"api={log_file}", f"web={log_file}", f"db={log_file}"),
        (),
        run_command=False,
        fmt="raw",
        multiline_modes=("java", "web=python", "db=start:^\\d"),
        **options,
    )
    assert str(config.multiline_for("api")) == "java"
    assert str(config.multiline_for("web")) == "python"
    assert str(config.multiline_for("db")) == "start:^\\d"


def test_multiline_from_the_environment_keeps_spaces(log_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LOGTAIL_MULTILINE holds one mode per line: a regex with spaces stays one mode."""
    monkeypatch.setenv("LOGTAIL_MULTILINE", "start:^ERROR \napi=java")
    monkeypatch.setenv("LOGTAIL_FILES", str(log_file))
    assert parsed_options(monkeypatch)["multiline_modes"] == ("start:^ERROR ", "api=java")

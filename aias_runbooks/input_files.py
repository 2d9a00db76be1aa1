"""Files an operator gives as input (a -f parameters file, a --schedules file): read safely and parsed as YAML
without the features that let a small file cost a lot. Messages name the file and the problem, never its content:
such a file may be anything the caller can point at."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml

from .errors import UsageError

MAX_INPUT_FILE = 1024 * 1024       # bytes in a -f parameters file or a schedules file


class StrictLoader(yaml.SafeLoader):
    """SafeLoader without anchors and aliases: a few hundred bytes of aliases expand to gigabytes. Shared by every
    YAML file given as input (parameters, schedules)."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(None, None, "anchors and aliases are not allowed", event.start_mark)
        return super().compose_node(parent, index)


def read_input_file(path: Path, name: str, missing: str = "does not exist") -> str:
    """The UTF-8 text of a file given as input (-f, --schedules): a regular file of at most 1 MiB, checked with a
    stat before it is opened (/dev/zero would be read until memory runs out, a FIFO would hang the read) and
    opened non-blocking; UsageError names the file (`name`) and the problem, never its content."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise UsageError(f"{name} is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{name} is not a regular file")
        if info.st_size > MAX_INPUT_FILE:
            raise UsageError(f"{name} is larger than 1 MiB")
        with open(path, "rb", opener=lambda p, flags: os.open(p, flags | os.O_NONBLOCK)) as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):   # swapped for something else since the stat
                raise UsageError(f"{name} is not a regular file")
            data = fh.read(MAX_INPUT_FILE + 1)
    except FileNotFoundError:
        raise UsageError(f"{name} {missing}") from None
    except OSError as exc:
        raise UsageError(f"{name} cannot be read: {(exc.strerror or type(exc).__name__).lower()}") from None
    if len(data) > MAX_INPUT_FILE:
        raise UsageError(f"{name} is larger than 1 MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{name} is not UTF-8 text (byte {exc.start + 1})") from None


def read_yaml_file(path: Path, name: str, example: str) -> object:
    """The one YAML document of an operator's input file (schedules, routes), read as read_input_file reads it and
    parsed with StrictLoader; UsageError names the file (`name`), the line and column, and where an example is."""
    text = read_input_file(path, name, missing=f"does not exist (an example: {example})")
    loader = StrictLoader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise UsageError(f"{name} is not valid YAML (no tags, anchors or aliases){at}") from None
    finally:
        loader.dispose()

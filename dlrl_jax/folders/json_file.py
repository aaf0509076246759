"""One JSON object read from a folder's file, with the one-line errors every folder reader gives."""

from __future__ import annotations

import json
import os


def read_json_object(path: str, error: type[Exception], missing: str, fix: str = "") -> dict:
    """The JSON object in `path`. `error` is raised, naming the file, when it is absent (`missing` says
    what the folder needs), is not JSON (`fix` says what to do), or holds something other than an object."""
    if not os.path.isfile(path):
        raise error(f"{path} is missing; {missing}")
    try:
        with open(path) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path} is not valid JSON ({e}){'; ' + fix if fix else ''}") from e
    if not isinstance(data, dict):
        raise error(f"{path} must hold a JSON object, found {type(data).__name__}")
    return data

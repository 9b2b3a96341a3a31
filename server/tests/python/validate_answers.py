"""Validates answers of the service against the schemas its OpenAPI document gives them.

usage: validate_answers.py DOCUMENT.json ANSWERS.json

ANSWERS.json is a list of {"what", "pointer", "body"}: `pointer` is a JSON pointer into the
document to the schema the answer's body must match. Prints "valid" and exits 0, or prints
every mismatch and exits 1.
"""

import json
import sys

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

BASE = "urn:m2m:openapi"


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as file:
        document = json.load(file)
    with open(sys.argv[2], encoding="utf-8") as file:
        answers = json.load(file)
    registry = Registry().with_resource(
        BASE, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    failures = 0
    for answer in answers:
        validator = Draft202012Validator(
            {"$ref": f"{BASE}#{answer['pointer']}"}, registry=registry
        )
        for error in validator.iter_errors(answer["body"]):
            failures += 1
            path = "/".join(str(part) for part in error.absolute_path)
            print(f"{answer['what']}: {path}: {error.message}")
    if failures:
        return 1
    print(f"valid ({len(answers)} answers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Validates an OpenAPI 3.1 document with openapi-spec-validator.

usage: validate_openapi.py DOCUMENT.json

Prints "valid" and exits 0, or prints every error found and exits 1.
"""

import json
import sys

from openapi_spec_validator import OpenAPIV31SpecValidator


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as file:
        document = json.load(file)
    if not str(document.get("openapi", "")).startswith("3.1."):
        print(f"not an OpenAPI 3.1 document: openapi = {document.get('openapi')!r}")
        return 1
    errors = list(OpenAPIV31SpecValidator(document).iter_errors())
    for error in errors:
        path = "/".join(str(part) for part in error.absolute_path)
        print(f"{path}: {error.message}")
    if errors:
        return 1
    print("valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())

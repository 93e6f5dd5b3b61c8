"""A stage's parameters file, ``infra/params/<stage>.env``, checked and handed to ``sam deploy`` intact.

``python -m infra.params FILE [--template infra/template.yaml] [-- COMMAND …]``

The file, one parameter a line: ``Key=Value``, split at the first ``=`` (spaces around the key and the value
are dropped; inside the value they are kept, as are ``#``, ``=``, commas and quotes). A line whose first
character other than spaces is ``#`` is a comment; blank lines are skipped; there are no inline comments, so a
Slack channel or a URL fragment stays in its value. Refused, each naming ``FILE:LINE``, what was expected and
the fix (exit 2, all problems at once): a line without ``=``; a key that is not a Parameter of
infra/template.yaml (with the nearest name, when there is one); ``Stage`` or ``Architecture`` (``make deploy``
sets them from ``STAGE=`` and ``ARCH=``); a key given twice; an empty value (leave the line out to take the
parameter's default); a value wrapped in quotes (they would be passed on as part of the value); a value SAM
cannot receive intact (below); a value the template's constraints refuse (``AllowedValues``, a ``Number``'s form
and bounds, a ``String``'s length and ``AllowedPattern``: :func:`_constraint_problem`), which ``make deploy``
checks before it packages anything. The old Makefile cut every line at its first ``#`` and let the shell split
values at spaces, so such values reached CloudFormation cut or as a bogus extra parameter.

Without COMMAND the overrides are printed, one a line, as ``sam deploy`` will receive them. With it (``make
deploy``: ``-- sam deploy … --parameter-overrides Stage=… Architecture=…``), the command is printed to stderr
and run in place of this process (``os.execvp``, no shell), with one word per parameter appended after its own
``--parameter-overrides`` — so the exit status is sam's.

How SAM reads them. ``sam deploy --parameter-overrides`` takes key-value pairs "in the same format as the AWS
CLI", e.g. ``ParameterKey=KeyPairName,ParameterValue=MyKey ParameterKey=InstanceType,ParameterValue=t1.micro``
(SAM CLI command reference, sam deploy:
https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/sam-cli-command-reference-sam-deploy.html).
The parser is the SAM CLI's own, not the AWS CLI's (aws/aws-sam-cli, ``samcli/cli/types.py``,
``CfnParameterOverridesType``; ``samcli/commands/_utils/custom_options/option_nargs.py``): every word after the
option up to the next word starting with ``-`` belongs to it, and each word is read on its own: if the form
``ParameterKey=K,ParameterValue=V`` is found in it, the word is read in that form, else as ``K=V`` pairs
separated by spaces. ``V`` ends at the first space unless it is wrapped in double quotes; the wrapping quotes are
then removed and ``\\"`` inside becomes ``"`` (also ``\\'`` → ``'`` and ``\\<space>`` → space; any other
backslash is kept as written). That is why an unquoted value with a space is cut there (aws/aws-sam-cli#2018,
#1652), and why quotes in the file could not help the old ``$(sed …)``: the shell split what it substituted at
every space, inside quotes or not.

So each parameter becomes one argv word, never seen by a shell: ``ParameterKey=K,ParameterValue="V"`` with each
``"`` of V written ``\\"``. The ``ParameterKey`` form is SAM's first choice, so the word is always read with it —
a ``K="V"`` word whose value happened to contain ``ParameterKey=…,ParameterValue=…`` would be read with the other
form. Inside the quotes SAM takes spaces, ``#``, ``=``, commas and ``'`` as they are. What it cannot pass on is
a backslash before a space, a quote or at the value's end (there is no escape for a backslash), so such a value
is refused here rather than changed. (A generated samconfig.toml was the other candidate: one more format and
SAM's config-file lookup between the file and the parser, for nothing the argv lacks.)

The bridge: the SAM CLI is not installed here. The tests check the words this module writes and, running it
with a stand-in for ``sam`` that records its argv, the exact argv ``sam deploy`` would be started with.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.build import TEMPLATE, BuildError, read_template

SET_BY_MAKE = {"Stage": "STAGE", "Architecture": "ARCH"}  # `make deploy` passes these itself
OVERRIDES_OPTION = "--parameter-overrides"
_UNSAFE_AFTER_BACKSLASH = (" ", '"', "'")  # SAM's unescaping would turn these pairs into one character
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")  # CloudFormation's Number: an integer or a float
# AWS-specific parameter types the template uses → the prefix of their IDs (EC2 IDs: 8 or 17 hex digits)
_AWS_IDS = {"AWS::EC2::Subnet::Id": "subnet", "AWS::EC2::SecurityGroup::Id": "sg", "AWS::EC2::VPC::Id": "vpc"}


@dataclass(frozen=True)
class Parameter:
    """One ``Key=Value`` line of the file (``line`` counts from 1, for the messages)."""

    key: str
    value: str
    line: int


@dataclass(frozen=True)
class Problem:
    """What is wrong with one line of the file, worded for the operator who edits it."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"


class ParamsError(Exception):
    """The parameters file cannot be deployed; ``problems`` are all of its faults, in line order."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = list(problems)


def template_parameters(template: Path = TEMPLATE) -> dict[str, dict[str, Any]]:
    """The ``Parameters`` of the template, by name: the only keys a parameters file may give."""
    try:
        parameters = read_template(template).get("Parameters")
    except BuildError as error:
        raise ParamsError([Problem(template, 0, str(error))]) from None
    if not isinstance(parameters, dict):
        raise ParamsError([Problem(template, 0, "has no Parameters section: it is not the kpi-pipeline template")])
    return parameters


def _shown(path: Path) -> Path:
    """``path`` relative to the working directory when it is under it (``make deploy`` runs at the root)."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def _unknown_key(key: str, known: Sequence[str], template: Path) -> str:
    by_case = [name for name in known if name.lower() == key.lower()]
    close = by_case or difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    shown = _shown(template)
    hint = f"did you mean {close[0]}?" if close else f"the names are those under Parameters: in {shown}"
    return f"{key} is not a parameter of {shown}: {hint}"


def _value_problem(key: str, value: str, spec: Mapping[str, Any]) -> str | None:
    if not value:
        if "Default" in spec:
            default = spec["Default"]
            shown = f'"{default}"' if isinstance(default, str) else str(default)
            return f"{key} has no value: give one, or leave the line out for its default ({shown})"
        return f"{key} has no value: give one (it has no default)"
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return (
            f"{key}'s value is wrapped in quotes, which would be passed on as part of it: write {key}=… without "
            "them (the value is everything after the first =, spaces and # included)"
        )
    for index, char in enumerate(value):
        if char == "\\" and (index + 1 == len(value) or value[index + 1] in _UNSAFE_AFTER_BACKSLASH):
            return (
                f"{key}'s value has a backslash before a space or a quote or at its end, which sam deploy "
                "--parameter-overrides cannot pass on as written: remove or move that backslash"
            )
    return _constraint_problem(key, value, spec)


def _constraint_problem(key: str, value: str, spec: Mapping[str, Any]) -> str | None:
    """The template's own constraints on the parameter — ``AllowedValues``, a ``Number``'s form and
    ``MinValue``/``MaxValue``, a ``String``'s ``MinLength``/``MaxLength`` and ``AllowedPattern`` — checked before
    anything is packaged: CloudFormation checks them only once ``sam deploy`` has uploaded the build, and names
    neither the file nor the line. The EC2 ID types (a subnet list, a security group) are checked for their
    shape, ``subnet-`` and 8 or 17 hexadecimal digits; that they exist, only CloudFormation can tell.
    ``AllowedPattern`` is a Java regular expression matched against the whole value; the template's patterns use
    only what Python's ``re`` reads alike (classes, ``\\s``, quantifiers, ``^$|…``), and
    ``tests/test_deploy_params.py`` compiles every one."""
    kind = spec.get("Type", "String")
    allowed = spec.get("AllowedValues")
    choices = [str(choice) for choice in allowed] if allowed is not None else None
    if choices is not None and value not in choices:
        near = difflib.get_close_matches(value.lower(), choices, n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        return f"{key}={value} is not one of the values the template allows: {', '.join(choices)}{hint}"
    if kind == "Number":
        if not _NUMBER.fullmatch(value):
            default = f", e.g. its default: {key}={spec['Default']}" if "Default" in spec else ""
            return f"{key}={value} is not a number (the template's {key} is a Number): write digits{default}"
        number = float(value)
        if "MinValue" in spec and number < float(spec["MinValue"]):
            return f"{key}={value} is below its minimum, {spec['MinValue']}"
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            return f"{key}={value} is above its maximum, {spec['MaxValue']}"
        return None
    aws_id = _AWS_IDS.get(kind.removeprefix("List<").removesuffix(">"))
    if aws_id is not None:
        items = value.split(",") if kind.startswith("List<") else [value]
        wrong = [item for item in items if not re.fullmatch(rf"{aws_id}-(?:[0-9a-f]{{8}}|[0-9a-f]{{17}})", item)]
        if wrong:
            shape = f"{aws_id}- and 8 or 17 hexadecimal digits"
            many = ", comma-separated without spaces" if kind.startswith("List<") else ""
            return f"{key}: {', '.join(repr(item) for item in wrong)} is not an ID of the form {shape}{many}"
        return None  # that each exists in the account, CloudFormation checks
    if kind != "String":
        return None  # a comma-delimited list of ARNs: CloudFormation checks it
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        return f"{key} is shorter than its minimum of {spec['MinLength']} characters"
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        return f"{key} is longer than its maximum of {spec['MaxLength']} characters"
    pattern = spec.get("AllowedPattern")
    if pattern is not None and not re.fullmatch(pattern, value):
        what = spec.get("ConstraintDescription") or f"the pattern {pattern}"
        return f"{key}={value} is not what the template allows: {what}"
    return None


def read_params(path: Path, parameters: Mapping[str, Mapping[str, Any]], template: Path = TEMPLATE) -> list[Parameter]:
    """The file's parameters in file order, or :class:`ParamsError` listing every line that is wrong."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a BOM some editors write is not part of the first key
    except (OSError, UnicodeDecodeError) as error:
        raise ParamsError([Problem(path, 0, f"cannot read it ({error}): it must be a UTF-8 text file")]) from None
    known = [name for name in parameters if name not in SET_BY_MAKE]
    found: list[Parameter] = []
    first_line: dict[str, int] = {}
    problems: list[Problem] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if "=" not in line:
            problems.append(
                Problem(
                    path,
                    number,
                    f"{stripped!r} is not Key=Value: write a parameter's name, =, then its value"
                    " (a comment starts with #)",
                )
            )
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        message: str | None
        if not key:
            message = "no parameter name before the =: write Key=Value"
        elif key in SET_BY_MAKE:
            message = f"{key} is set by make deploy ({SET_BY_MAKE[key]}=…), not here: remove this line"
        elif key not in parameters:
            message = _unknown_key(key, known, template)
        elif key in first_line:
            message = f"{key} is given twice (first on line {first_line[key]}): keep one of the two lines"
        else:
            first_line[key] = number
            message = _value_problem(key, value, parameters[key])
        if message:
            problems.append(Problem(path, number, message))
        else:
            found.append(Parameter(key, value, number))
    if problems:
        raise ParamsError(problems)
    return found


def sam_override(key: str, value: str) -> str:
    """One argv word that ``sam deploy --parameter-overrides`` reads as exactly ``key`` = ``value``.

    ``value`` must have passed :func:`read_params` (no backslash before a space, a quote or at its end).
    """
    escaped = value.replace('"', '\\"')
    return f'ParameterKey={key},ParameterValue="{escaped}"'


def sam_overrides(params: Sequence[Parameter]) -> list[str]:
    """The argv words for all of the file's parameters, in file order."""
    return [sam_override(param.key, param.value) for param in params]


def deploy_command(command: Sequence[str], params: Sequence[Parameter]) -> list[str]:
    """``command`` with the file's overrides appended; its last option must be ``--parameter-overrides``.

    SAM gives the option every following word up to the next that starts with ``-``, so appended words belong to
    it only when it is the command's last option.
    """
    options = [word for word in command if word.startswith("-")]
    if not command or not options or options[-1] != OVERRIDES_OPTION:
        raise ValueError(f"the command must end with its {OVERRIDES_OPTION} (and what make deploy sets): {command}")
    return [*command, *sam_overrides(params)]


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """The options before ``--``, and the command after it (empty: print the overrides)."""
    if "--" in argv:
        cut = list(argv).index("--")
        own, command = list(argv[:cut]), list(argv[cut + 1 :])
    else:
        own, command = list(argv), []
    parser = argparse.ArgumentParser(
        prog="python -m infra.params",
        description="Check a stage's parameters file and pass its values to sam deploy intact.",
    )
    parser.add_argument("file", type=Path, help="the parameters file (infra/params/<stage>.env)")
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="the template whose Parameters it sets")
    parser.epilog = "-- COMMAND …: run COMMAND (ending with --parameter-overrides …) with the file's overrides"
    return parser.parse_args(own), command


def main(argv: Sequence[str] | None = None) -> int:
    args, command = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        params = read_params(args.file, template_parameters(args.template), args.template)
        full = deploy_command(command, params) if command else None
    except ParamsError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if full is None:
        for word in sam_overrides(params):
            print(word)
        return 0
    print(shlex.join(full), file=sys.stderr, flush=True)
    sys.stdout.flush()
    try:
        os.execvp(full[0], full)
    except OSError as error:
        print(f"error: cannot run {full[0]}: {error.strerror} (is it installed and on PATH?)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""Command line: `python -m kd_keras.models [--task TASK]` lists the registered models, with their role and task."""

from __future__ import annotations

import sys

from kd_keras.cli.args import command_parser, parse
from kd_keras.version import __version__
from kd_keras.cli.errors import report_user_errors


def run(args) -> None:
    from kd_keras.models.registry import list_models, model_role, model_task, pretrained_weights

    names = list_models(task=args.task)
    if not names:
        raise ValueError(f"no model is registered for task {args.task!r}; tasks: classification, edge_detection, "
                         f"super_resolution.")
    width = max(len(n) for n in names)
    for name in names:
        weights = pretrained_weights(name)
        extra = f"  weights: {', '.join(weights)}" if weights else ""
        print(f"{name:<{width}}  {model_task(name):<16} {model_role(name):<8}{extra}")


def parser():
    prog = "python -m kd_keras.models"
    p = command_parser(prog, "List the registered models (create_model names): task, role (teacher, student or "
                             "any) and named weights.", [prog, f"{prog} --task classification"], __version__)
    p.add_argument("--task", choices=("classification", "edge_detection", "super_resolution"),
                   help="only this task's models")
    return p


def main(argv=None) -> int:
    args, code = parse(parser(), argv)
    return code if args is None else report_user_errors(run, args)


if __name__ == "__main__":
    sys.exit(main())

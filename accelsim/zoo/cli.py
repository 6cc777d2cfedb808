"""``accelsim zoo``: list the models that ``--model NAME`` accepts."""
from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    zoo = subparsers.add_parser("zoo", help="list the model zoo",
                                description="List the zoo models (names for --model). Any user model "
                                            "is accepted as package.module:attribute, and "
                                            "torchvision:NAME when torchvision is installed.")
    zoo.add_argument("--json", action="store_true", help="print JSON")
    zoo.set_defaults(handler=_list)


def _list(args: argparse.Namespace) -> int:
    from accelsim.zoo import list_models

    models = list_models()
    if args.json:
        print(json.dumps({name: {"input_shape": list(e.input_shape), "description": e.description}
                          for name, e in models.items()}, indent=2))
        return 0
    width = max(len(name) for name in models)
    for name, entry in models.items():
        shape = "x".join(str(d) for d in entry.input_shape)
        print(f"{name:<{width}}  {shape:<10}  {entry.description}")
    return 0

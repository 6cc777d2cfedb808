"""``accelsim train RECIPE.yaml [-o DIR] [--resume]``."""
from __future__ import annotations

import argparse
import os
import sys

from accelsim.errors import AccelsimError
from accelsim.zoo.gate import user_model_arg


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model with a recipe (dense, pruning, activation sparsity stages)",
        description="Train a model following a recipe YAML (see models/*.yaml). Writes "
                    "metrics.jsonl, per-stage checkpoints and model.pt into the output folder.")
    parser.add_argument("recipe", help="recipe YAML file, e.g. models/lenet5_digits_dual.yaml")
    parser.add_argument("-o", "--out", default=None,
                        help="output folder (default: runs/<recipe name>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in the output folder from its last checkpoint")
    parser.add_argument("--model", default=None, metavar="SPEC", type=user_model_arg,
                        help="train this model instead of the recipe's: a zoo name or your own "
                             "package.module:attribute (a recipe file may name only zoo models)")
    parser.add_argument("--seed", type=int, default=None, help="override the recipe's seed")
    parser.add_argument("--device", default="cpu",
                        help="torch device: cpu (default), cuda, cuda:N (needs a CUDA build of "
                             "PyTorch and an NVIDIA GPU)")
    parser.add_argument("--save", default=None, metavar="PATH",
                        help="also write the final checkpoint to PATH")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: half the usable cores, at most 4, or "
                             "OMP_NUM_THREADS when set; small models gain nothing from more and "
                             "slow down badly when threads outnumber free cores)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    import torch

    from accelsim.train.recipe import load_recipe
    from accelsim.train.run import run_recipe

    threads, why = pick_threads(args.threads)
    if threads is not None:
        torch.set_num_threads(threads)
    from accelsim.train.recipe import MAX_SEED

    if args.seed is not None and not 0 <= args.seed <= MAX_SEED:
        raise AccelsimError(f"--seed: expected an integer from 0 to {MAX_SEED:,}, "
                            f"got {args.seed if abs(args.seed) < 10 ** 30 else 'a larger one'}")
    from accelsim.device import resolve_device

    device = resolve_device(args.device)  # one line if this build or machine cannot use it
    recipe = load_recipe(args.recipe, model=args.model)  # a bad recipe stays a one-line error
    if not args.quiet:
        print(f"torch CPU threads: {torch.get_num_threads()} ({why}; --threads N to change)",
              file=sys.stderr)
    result = run_recipe(recipe, args.out, resume=args.resume, seed=args.seed, device=str(device),
                        save_to=args.save, progress=not args.quiet)
    m = result.metrics
    if "val_accuracy" in m:
        print(f"validation: accuracy {m['val_accuracy']:.4f}  mean activation sparsity "
              f"{m['val_mean_act_sparsity']:.4f}  multiplication reduction {m['val_mult_reduction']:.4f}")
    print(f"test (once, final model): accuracy {m['test_accuracy']:.4f}  mean activation sparsity "
          f"{m['test_mean_act_sparsity']:.4f}  weight sparsity {m['weight_sparsity']:.4f}  "
          f"multiplication reduction {m['test_mult_reduction']:.4f}")
    print(f"checkpoint: {result.checkpoint}", file=sys.stderr)
    return 0


def usable_cores() -> int:
    """CPU cores this process may run on (affinity-aware where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def pick_threads(requested: int | None) -> tuple[int | None, str]:
    """Torch thread count for training and why: ``--threads``, else ``OMP_NUM_THREADS`` (left to
    torch, returns None), else half the usable cores, between 1 and 4."""
    if requested is not None:
        from accelsim.sweep.evaluate import check_local_workers

        # a positive count of at most 4 per usable core (a typo must not start 100,000 threads)
        return check_local_workers(requested, "--threads", "threads"), "--threads"
    if os.environ.get("OMP_NUM_THREADS"):
        return None, "from OMP_NUM_THREADS"
    cores = usable_cores()
    return max(1, min(4, cores // 2)), f"default for {cores} usable core{'s' if cores != 1 else ''}"

"""`artifact-removal` command line: argument parsing only; every command calls the library."""
import argparse
import sys
from dataclasses import fields, replace

from .nogan import QUICK, NoGANConfig

__all__ = ['main']


def _add_config_args(p):
    "One --option per NoGANConfig field, defaulting to None so only what the user sets overrides the config."
    for f in fields(NoGANConfig):
        name, kind = '--' + f.name.replace('_', '-'), type(f.default)
        if kind is bool: p.add_argument(name, action=argparse.BooleanOptionalAction, default=None)
        elif kind is tuple: p.add_argument(name, type=type(f.default[0]), nargs='+', default=None)
        else: p.add_argument(name, type=kind, default=None)


def _train(args):
    from .nogan import run_nogan
    base = QUICK if args.quick else NoGANConfig()
    overrides = {f.name: getattr(args, f.name) for f in fields(NoGANConfig) if getattr(args, f.name) is not None}
    cfg = replace(base, **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})
    result = run_nogan(args.out, args.data, args.valid, cfg, cycles=args.cycles)
    print(f"switch point: {result['chosen']} ({result['rule']}); final generator: {args.out}/generator.pth")


def _parser():
    p = argparse.ArgumentParser(prog='artifact-removal', description='Remove JPEG compression artifacts.')
    sub = p.add_subparsers(dest='command', required=True)
    t = sub.add_parser('train', help='train a generator with the NoGAN recipe (resumes if OUT has a run)',
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument('--data', required=True, help='folder of clean training images')
    t.add_argument('--valid', help='folder of clean validation images (default: hold out 10%% of --data)')
    t.add_argument('--out', required=True, help='run folder: checkpoints, logs, the chosen generator.pth')
    t.add_argument('--quick', action='store_true', help='tiny settings: every stage in a few minutes on a CPU')
    t.add_argument('--cycles', type=int, default=1, help='NoGAN cycles (critic + GAN phases) to run')
    _add_config_args(t)
    t.set_defaults(func=_train)
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    try: args.func(args)
    except (FileNotFoundError, ValueError) as e:
        print(f'artifact-removal: error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__': sys.exit(main())

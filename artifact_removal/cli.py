"""`artifact-removal` command line: argument parsing only; every command calls the library."""
import argparse
import sys
from dataclasses import fields, replace
from pathlib import Path

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
    if result is None: print(f'generator pretraining only (--cycles 0): {args.out}/gen_pretrain.pth')
    else: print(f"switch point: {result['chosen']} ({result['rule']}); final generator: {args.out}/generator.pth")


def _restore(args):
    from .image_io import IMAGE_EXTENSIONS
    from .restore import Restorer
    r = Restorer(args.model, args.device, tile=args.tile)
    out = Path(args.output) if args.output else None
    single_file = len(args.inputs) == 1 and Path(args.inputs[0]).is_file()
    failed = 0
    for src in map(Path, args.inputs):
        if src.is_dir():
            dst_dir = out / src.name if out and len(args.inputs) > 1 else out or src.with_name(src.name + '_restored')
            done = r(src, args.strength, out_dir=dst_dir, ext=args.ext, overwrite=args.overwrite, on_error='skip')
            for e in r.errors: print(f'skipped {e}', file=sys.stderr)
            failed += len(r.errors)
            print(f'{src}: {len(done)} images restored into {dst_dir}')
            continue
        if single_file and out and out.suffix.lower() in IMAGE_EXTENSIONS: dst = out
        else:
            ext = src.suffix if args.ext == 'auto' else '.' + args.ext
            dst = (out / src.name).with_suffix(ext) if out else src.with_name(f'{src.stem}_restored{ext}')
        try: r.restore_file(src, dst, args.strength, overwrite=args.overwrite)
        except ValueError as e:
            print(f'skipped {e}', file=sys.stderr); failed += 1; continue
        print(f'{src} -> {dst}')
    return 1 if failed else 0


def _video(args):
    from .video import restore_video
    dst = restore_video(args.input, args.output, model=args.model, strength=args.strength, codec=args.codec,
                        crf=args.crf, fps=args.fps, pix_fmt=args.pix_fmt, batch_size=args.batch_size, tile=args.tile,
                        device=args.device, overwrite=args.overwrite)
    print(f'{args.input} -> {dst}')


def _models(args):
    from . import registry
    if args.action == 'list':
        default = registry.default_model()
        for name in registry.list_models():
            info = registry.get_model_info(name)
            try: where = registry.model_path(name, download=False)
            except FileNotFoundError: where = 'not downloaded'
            print(f"{name}{' (default)' if name == default else ''}: {info.arch}, {info.description} [{where}]")
    else:
        if not args.name: raise ValueError('models download: name a model (see `artifact-removal models list`)')
        print(registry.download_model(args.name, force=args.force))


def _export_onnx(args):
    from .export import export_onnx
    print(f'{export_onnx(args.model, args.output, opset=args.opset)}: checked against PyTorch with onnxruntime')


def _eval(args):
    from .evaluate import BLIND_QUALITIES, blind_check, evaluate
    models = args.model or ['default']
    if args.blind:
        checks = [blind_check(m, args.data, args.quality or BLIND_QUALITIES, args.gray, device=args.device)
                  for m in models]
        for c in checks: print('', c.markdown(), c.verdict(), sep='\n')
        return 0 if all(c.passed for c in checks) else 1
    ev = evaluate(models, args.data, args.quality or (10, 20, 30, 40), args.gray, args.out, args.device)
    print('\n' + ev.markdown())  # after the progress bar's line
    if args.out: print(f'per-image and average scores, perception-distortion plot and crops written to {args.out}')


def _restore_options(p):
    p.add_argument('--model', default='default', help='registry name (see `models list`) or .safetensors file')
    p.add_argument('--strength', type=float, default=1.0, help='0 keeps the input, 1 is the full restoration')
    p.add_argument('--tile', type=int, default=None, help='tile size in px; 0 = whole image; default: from free memory')
    p.add_argument('--device', default=None, help='cpu, cuda, mps (default: the best available)')
    p.add_argument('--overwrite', action='store_true', help='allow writing over an input file')


def _parser():
    p = argparse.ArgumentParser(prog='artifact-removal', description='Remove JPEG compression artifacts.')
    sub = p.add_subparsers(dest='command', required=True)
    t = sub.add_parser('train', help='train a generator with the NoGAN recipe (resumes if OUT has a run)',
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument('--data', required=True, help='folder of clean training images')
    t.add_argument('--valid', help='folder of clean validation images (default: hold out 10%% of --data)')
    t.add_argument('--out', required=True, help='run folder: checkpoints, logs, the chosen generator.pth')
    t.add_argument('--quick', action='store_true', help='tiny settings: every stage in a few minutes on a CPU')
    t.add_argument('--cycles', type=int, default=1, help='NoGAN cycles (critic + GAN phases) to run; 0: generator pretraining only')
    _add_config_args(t)
    t.set_defaults(func=_train)

    r = sub.add_parser('restore', help='restore image files or folders of images',
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    r.add_argument('inputs', nargs='+', metavar='IN', help='image files or folders')
    r.add_argument('-o', '--output', help='output file (one input) or folder; default: NAME_restored.png beside '
                   'each input, FOLDER_restored/ for a folder')
    r.add_argument('--ext', default='png', help="output format: png, tif, jpg (quality 95, 4:4:4), webp or 'auto' "
                   "(the input's)")
    _restore_options(r)
    r.set_defaults(func=_restore)

    v = sub.add_parser('video', help='restore a video (audio copied) or a folder of frames; OUT a video file, '
                       'or a folder for PNG frames',
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    v.add_argument('input', metavar='IN')
    v.add_argument('output', metavar='OUT')
    v.add_argument('--codec', default='libx264', help='video codec of the output')
    v.add_argument('--crf', type=int, default=18, help='quality for x264/x265 (lower is better)')
    v.add_argument('--fps', type=float, default=None, help='frame rate when IN is a folder of frames (default 25)')
    v.add_argument('--pix-fmt', default=None, help='output pixel format (default yuv420p; yuv444p for odd sizes)')
    v.add_argument('--batch-size', type=int, default=4, help='frames restored together')
    _restore_options(v)
    v.set_defaults(func=_video)

    m = sub.add_parser('models', help='list the named models or download one into the cache')
    m.add_argument('action', choices=['list', 'download'])
    m.add_argument('name', nargs='?')
    m.add_argument('--force', action='store_true', help='download again even if cached')
    m.set_defaults(func=_models)

    ev = sub.add_parser('eval', help='score models and the JPEG input on clean test images (PSNR, SSIM, PSNR-B, '
                        'ST-LPIPS) as the JPEG-artifact papers do')
    ev.add_argument('--model', action='append', help='registry name or .safetensors file; repeat to compare '
                    'several (default: the default model)')
    ev.add_argument('--data', required=True, help='folder of clean test images, e.g. LIVE1 or Classic5')
    ev.add_argument('--quality', type=int, nargs='+', help='JPEG qualities (default: 10 20 30 40; with --blind '
                    '5 10 ... 95)')
    ev.add_argument('--gray', action='store_true', help='read, compress and restore the images as gray')
    ev.add_argument('--out', help='folder for per_image.csv, summary.csv, summary.md, perception_distortion.png '
                    'and crops.png')
    ev.add_argument('--blind', action='store_true', help='check each model over qualities 5 to 95 instead; exit 1 '
                    'if one loses more than 0.05 dB PSNR on average at quality 90 or above')
    ev.add_argument('--device', default=None, help='cpu, cuda, mps (default: the best available)')
    ev.set_defaults(func=_eval)

    e = sub.add_parser('export-onnx', help='export a model to ONNX, checked against PyTorch with onnxruntime',
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    e.add_argument('--model', default='default')
    e.add_argument('-o', '--output', default='artifact_removal.onnx')
    e.add_argument('--opset', type=int, default=17)
    e.set_defaults(func=_export_onnx)
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    try: return args.func(args) or 0
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f'artifact-removal: error: {e}', file=sys.stderr)
        return 2


if __name__ == '__main__': sys.exit(main())

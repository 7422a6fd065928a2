"""`artifact-removal` command line: argument parsing only; every command calls the library."""
import argparse
import json
import signal
import sys
from dataclasses import asdict, fields, replace
from pathlib import Path

from .config import NoGANConfig

__all__ = ['main']


def _add_config_args(p):
    "One --option per NoGANConfig field with its help and default; None unless set, so only what is set overrides."
    for f in fields(NoGANConfig):
        name, kind, default = '--' + f.name.replace('_', '-'), type(f.default), f.default
        shown = ' '.join(map(str, default)) if kind is tuple else repr(default) if kind is str else default
        kw = dict(default=None, help=f"{f.metadata['help']} (default: {shown})")
        if kind is bool: p.add_argument(name, action=argparse.BooleanOptionalAction, **kw)
        elif kind is tuple: p.add_argument(name, type=type(default[0]), nargs=len(default), **kw)
        else: p.add_argument(name, type=kind, **kw)


def _check_train_folders(data, valid):
    "Refuse a validation folder inside (or equal to) a training folder: the run would train on what scores it."
    if not valid: return
    v = Path(valid).resolve()
    for d in map(lambda f: Path(f).resolve(), data):
        if v == d or d in v.parents:
            raise ValueError(f'--valid {valid} lies inside --data {d}: the model would train on its validation images; '
                             'pass training folders that do not contain it')


def _check_rerun(out, cfg, data, valid):
    "A run folder holds one run: a rerun with other settings is refused, naming what differs."
    old = Path(out) / 'config.json'
    if not old.exists(): return
    was = json.loads(old.read_text())
    now = {'config': json.loads(json.dumps(asdict(cfg))), 'data': [str(d) for d in data], 'valid': str(valid)}
    diff = [k for k in now['config'] if was.get('config', {}).get(k) != now['config'][k]]
    diff += [k for k in ('data', 'valid') if was.get(k) != now[k]]
    if diff:
        raise ValueError(f'{out} holds a run with other settings ({", ".join(diff)} differ); rerun it with the same '
                         'settings to resume, or give a new --out')


def _train(args):
    from .config import QUICK
    from .nogan import run_nogan
    if args.quick: print('--quick: a smoke run of every stage in minutes; its model is not meant to restore images')
    base = QUICK if args.quick else NoGANConfig()
    overrides = {f.name: getattr(args, f.name) for f in fields(NoGANConfig) if getattr(args, f.name) is not None}
    cfg = replace(base, **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})
    _check_train_folders(args.data, args.valid)
    _check_rerun(args.out, cfg, args.data, args.valid)
    try: result = run_nogan(args.out, args.data, args.valid, cfg, cycles=args.cycles)
    except KeyboardInterrupt:
        print(f'\nstopped: {args.out} keeps every finished epoch and stage; the same command resumes there',
              file=sys.stderr)
        return 130
    if result is None: print(f'generator pretraining only (--cycles 0): {args.out}/gen_pretrain.pth')
    else: print(f"switch point: {result['chosen']} ({result['rule']}); final generator: {args.out}/generator.pth")


def _model(args):
    "--model, with 'default' read at --scale (for --scale 2 the registry's x2 model)."
    if args.model != 'default' or args.scale in (None, 1): return args.model
    from .weights import default_model_for
    return default_model_for(args.scale)


def _restore(args):
    if args.ray is not None:  # each folder on Ray, resumable (artifact_removal.distributed)
        from .distributed import restore_folder_on_ray
        out, failed = Path(args.output) if args.output else None, []
        for src in map(Path, args.inputs):
            dst_dir = out / src.name if out and len(args.inputs) > 1 else out or src.with_name(src.name + '_restored')
            summary = restore_folder_on_ray(src, dst_dir, args.ray or None, args.workers, _model(args), args.strength,
                                            args.ext, args.tile, quality=args.quality, device=args.device,
                                            overwrite=args.overwrite, include_restored=args.include_restored)
            print(summary)
            failed += summary.failed
        for _, e in failed: print(f'skipped {e}', file=sys.stderr)
        return 1 if failed else 0
    from .image_io import IMAGE_EXTENSIONS
    from .restore import Restorer, _check_options, failure_message, images_to_restore, output_path
    _check_options(args.strength, args.tile, args.quality)  # once, not as a failure of every file
    r = Restorer(args.model, args.device, tile=args.tile, scale=args.scale, precision=args.precision)
    out = Path(args.output) if args.output else None
    single_file = len(args.inputs) == 1 and Path(args.inputs[0]).is_file()
    opts = dict(strength=args.strength, overwrite=args.overwrite, quality=args.quality)
    failed, n_done = [], 0
    try:
        for src in map(Path, args.inputs):
            if src.is_dir():
                dst_dir = out / src.name if out and len(args.inputs) > 1 else out or src.with_name(src.name + '_restored')
                try: files = images_to_restore(src, dst_dir, args.include_restored)
                except (ValueError, OSError) as e:  # no images there, or not readable: the other inputs still run
                    failed.append((src, failure_message(src, e)))
                    continue
                done, errors = r.restore_files(files, dst_dir, src, args.ext, on_error='skip', **opts)
                failed += errors
                n_done += len(done)
                print(f'\n{src}: {len(done)} images restored into {dst_dir}' if len(files) > 1 else
                      f'{src}: {len(done)} images restored into {dst_dir}')
                continue
            dst = out if single_file and out and out.suffix.lower() in IMAGE_EXTENSIONS else output_path(src, out, None, args.ext)
            try: r.restore_file(src, dst, **opts)
            except (ValueError, OSError) as e:
                failed.append((src, failure_message(src, e)))
                continue
            n_done += 1
            print(f'{src} -> {dst}')
    except KeyboardInterrupt as e:
        for _, msg in failed: print(f'skipped {msg}', file=sys.stderr)
        raise type(e)(str(e) or f'stopped at {src} ({n_done} images restored before it)') from None
    for _, e in failed: print(f'skipped {e}', file=sys.stderr)
    return 1 if failed else 0


def _demo(args):
    from .demo import run_demo
    r = run_demo(args.image, args.output, args.quality, args.model)
    print(f"{r['input']}: the photo saved as a JPEG at quality {args.quality}\n{r['restored']}: restored (changed "
          f"{r['mean_change']:.1f} levels per pixel on average)\n{r['figure']}: open it: the zoom shows the 8x8 blocks, "
          "the colour patches and the ringing of the JPEG on the left, gone on the right")


def _video(args):
    from .temporal import TemporalBlend
    from .video import restore_video
    temporal = (False if args.no_temporal else
                TemporalBlend() if args.temporal_weight is None else TemporalBlend(weight=args.temporal_weight))
    dst = restore_video(args.input, args.output, model=args.model, strength=args.strength, codec=args.codec,
                        crf=args.crf, fps=args.fps, pix_fmt=args.pix_fmt, batch_size=args.batch_size, tile=args.tile,
                        device=args.device, overwrite=args.overwrite, quality=args.quality,
                        allow_truncated=args.allow_truncated, scale=args.scale, precision=args.precision,
                        temporal=temporal)
    print(f'{args.input} -> {dst}')


def _models(args):
    from . import registry
    if args.action == 'list':
        default = registry.default_model()
        for name in registry.list_models():
            info = registry.get_model_info(name)
            try: where = registry.model_path(name, download=False)
            except FileNotFoundError: where = 'not downloaded'
            print(f"{name}{' (default)' if name == default else ''}: {info.description} ({info.arch}) [{where}]")
    else:
        if not args.name: raise ValueError('models download: name a model (see `artifact-removal models list`)')
        print(registry.download_model(args.name, force=args.force))


def _export_onnx(args):
    from .export import export_onnx
    print(f'{export_onnx(_model(args), args.output, opset=args.opset)}: checked against PyTorch with onnxruntime')


def _serve(args):
    from .serve import export_site, serve
    if args.export: print(f'{export_site(args.export, args.model)}: the page and its models, for any static host')
    else: serve(args.port, args.host, args.model, args.open)


def _eval(args):
    from .evaluate import BLIND_QUALITIES, blind_check, evaluate
    models = args.model or [_model(argparse.Namespace(model='default', scale=args.scale))]
    if args.blind and args.scale > 1: raise ValueError('--blind checks artifact-removal models; not with --scale')
    if args.blind:
        checks = [blind_check(m, args.data, args.quality or BLIND_QUALITIES, args.gray, device=args.device)
                  for m in models]
        for c in checks: print('', c.markdown(), c.verdict(), sep='\n')
        return 0 if all(c.passed for c in checks) else 1
    ev = evaluate(models, args.data, args.quality, args.gray, args.out, args.device, scale=args.scale,
                  restore_first=args.restore_model or ('fidelity',))
    print('\n' + ev.markdown())  # after the progress bar's line
    if args.out: print(f'per-image and average scores, perception-distortion plot and crops written to {args.out}')


def _eval_video(args):
    from .evaluate_video import evaluate_video, parse_setting
    settings = dict(map(parse_setting, args.setting)) if args.setting else None
    ev = evaluate_video(args.model or ['default'], args.data, settings, temporal=not args.no_temporal, out=args.out,
                        max_frames=args.max_frames, device=args.device)
    print('\n' + ev.markdown())
    if args.out: print(f'per-clip and average scores, per-frame PSNR and frames written to {args.out}')


def _eval_quality(text):
    "A JPEG quality (1-100), or 'clean' (an SR input left uncompressed)."
    return text if text == 'clean' else int(text)


def _restore_options(p):
    p.add_argument('--model', default='default', help='registry name (see `models list`) or .safetensors file')
    p.add_argument('--strength', type=float, default=1.0, help='0 keeps the input, 1 is the full restoration')
    p.add_argument('--tile', type=int, default=None, help='tile size in px; 0 = whole image; default: from available memory')
    p.add_argument('--device', default=None, help='cpu, cuda, mps (default: the best available)')
    p.add_argument('--overwrite', action='store_true', help='allow writing over an input file')
    p.add_argument('--quality', type=int, default=None, help='JPEG quality (1-100) the input was compressed at, for '
                   "a quality-aware model: overrides what a JPEG's own tables say (e.g. a double-compressed image) "
                   'and the estimate from pixels for other inputs')
    p.add_argument('--scale', type=int, default=None, help='2: also make the output twice as large (super-resolution); '
                   'the default model is then the x2 one, and --model must be an x2 model')
    p.add_argument('--precision', default='auto', help='fp32, or bf16 / fp16 autocast (checked, redone in fp32 if '
                   'it overflows); auto: fp16 on CUDA, bf16 on a CPU that has it natively, else fp32')


def _parser():
    p = argparse.ArgumentParser(prog='artifact-removal', description='Remove JPEG compression artifacts.')
    sub = p.add_subparsers(dest='command', required=True)
    t = sub.add_parser('train', help='train a generator with the NoGAN recipe (resumes if OUT has a run)')
    t.add_argument('--data', required=True, nargs='+', help='folders of clean training images')
    t.add_argument('--valid', help='folder of clean validation images (default: hold out 10%% of --data)')
    t.add_argument('--out', required=True, help='run folder: checkpoints, logs, the chosen generator.pth')
    t.add_argument('--quick', action='store_true', help='tiny settings: every stage in a few minutes on a CPU')
    t.add_argument('--cycles', type=int, default=1, help='NoGAN cycles (critic + GAN phases) to run; 0: generator '
                   'pretraining only (default: 1)')
    _add_config_args(t)
    t.set_defaults(func=_train)

    r = sub.add_parser('restore', help='restore image files or folders of images',
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    r.add_argument('inputs', nargs='+', metavar='IN', help='image files or folders')
    r.add_argument('-o', '--output', help='output file (one input) or folder; default: NAME_restored.png beside '
                   'each input, FOLDER_restored/ for a folder')
    r.add_argument('--ext', default='png', help="output format: png, tif, jpg (quality 95, 4:4:4), webp or 'auto' "
                   "(the input's)")
    r.add_argument('--include-restored', action='store_true', help='in folders, also restore the NAME_restored '
                   'files and output folder an earlier run wrote there (skipped by default)')
    r.add_argument('--ray', nargs='?', const='', default=None, metavar='ADDRESS', help='restore folders on Ray: '
                   'a local Ray without ADDRESS, else the cluster at ADDRESS (auto, HOST:PORT); resumable, with a '
                   "manifest in the output folder. Needs the 'distributed' extra; put it after IN or write --ray=ADDRESS")
    r.add_argument('--workers', type=int, default=None, help='with --ray: Restorer workers (default: one per GPU, '
                   'else one per 4 CPUs)')
    _restore_options(r)
    r.set_defaults(func=_restore)

    d = sub.add_parser('demo', help='save a photo as a low-quality JPEG, restore it, and draw both side by side',
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d.add_argument('image', nargs='?', help="a photo of your own (default: scikit-image's 'coffee', CC0)")
    d.add_argument('-o', '--output', default='artifact_removal_demo', help='folder for the JPEG, the result and the figure')
    d.add_argument('--quality', type=int, default=15, help='JPEG quality to save the photo at')
    d.add_argument('--model', default='default', help='registry name or .safetensors file')
    d.set_defaults(func=_demo)

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
    v.add_argument('--allow-truncated', action='store_true', help='write what a video has when it ends before the '
                   'frame count its index announces (a cut download), with a warning, instead of failing')
    temporal = v.add_mutually_exclusive_group()
    temporal.add_argument('--no-temporal', action='store_true', help='restore every frame on its own, without the temporal '
                          'filter that steadies them along the motion (docs/video.md)')
    temporal.add_argument('--temporal-weight', type=float, default=None,
                          help="the temporal filter's strength: the share of the previous result that a pixel the motion "
                          'explains takes, 0 to below 1 (default 0.5; higher is steadier, lower follows each frame)')
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
    ev.add_argument('--quality', type=_eval_quality, nargs='+', help="JPEG qualities, or 'clean' with --scale "
                    '(default: 10 20 30 40; with --scale: clean 30 10; with --blind '
                    '5 10 ... 95)')
    ev.add_argument('--gray', action='store_true', help='read, compress and restore the images as gray')
    ev.add_argument('--out', help='folder for per_image.csv, summary.csv, summary.md, perception_distortion.png '
                    'and crops.png')
    ev.add_argument('--blind', action='store_true', help='check each model over qualities 5 to 95 instead; exit 1 '
                    'if one loses more than 0.05 dB PSNR on average at quality 90 or above')
    ev.add_argument('--device', default=None, help='cpu, cuda, mps (default: the best available)')
    ev.add_argument('--scale', type=int, default=1, help='2: score x2 super-resolution models (default model: the x2 '
                    'one) by the SR protocol: the input downscaled (bicubic), then compressed; PSNR and SSIM on the luma '
                    'without a 2-px border; rows for bicubic and for each --restore-model then bicubic')
    ev.add_argument('--restore-model', action='append', help='with --scale: artifact-removal model whose restoration '
                    'of the input, upscaled bicubically, is a row; repeat for several (default: fidelity)')
    ev.set_defaults(func=_eval)

    ev = sub.add_parser('eval-video', help='score models on pristine clips compressed with H.264/H.265 as the video '
                        'field does: delta PSNR/SSIM, warping error, temporal-difference error, fps')
    ev.add_argument('--data', required=True, help='folder of pristine clips: subfolders of frames or video files '
                    '(clips.make_clips makes them from photos)')
    ev.add_argument('--model', action='append', help='registry name or .safetensors file; repeat to compare several '
                    '(default: the default model)')
    ev.add_argument('--setting', nargs='+', metavar='CODEC:RATE', help='codec settings such as h264:crf=35 or '
                    'h265:qp=37 (default: H.264 CRF 18 30 35 40 and H.265 QP 37)')
    ev.add_argument('--no-temporal', action='store_true', help='frame by frame only (default: also with the temporal '
                    'filter restore_video applies)')
    ev.add_argument('--max-frames', type=int, default=None, help='score the first frames of each clip only')
    ev.add_argument('--out', help='folder for per_clip.csv, summary.csv, summary.md, per_frame_psnr.png and frames.png')
    ev.add_argument('--device', default=None, help='cpu, cuda, mps (default: the best available)')
    ev.set_defaults(func=_eval_video)

    e = sub.add_parser('export-onnx', help='export a model to ONNX, checked against PyTorch with onnxruntime',
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    e.add_argument('--model', default='default', help='registry name (see `models list`) or .safetensors file')
    e.add_argument('-o', '--output', default='artifact_removal.onnx', help='the ONNX file to write')
    e.add_argument('--opset', type=int, default=17, help='ONNX opset version')
    e.add_argument('--scale', type=int, default=None, help="2: export the x2 super-resolution model (with --model "
                   "'default')")
    e.set_defaults(func=_export_onnx)

    w = sub.add_parser('serve', help='serve a page that restores images in the browser (nothing is uploaded)',
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    w.add_argument('--port', type=int, default=8000, help='port to listen on (0: any free port)')
    w.add_argument('--host', default='127.0.0.1', help='address to listen on')
    w.add_argument('--model', action='append', help='registry name or .safetensors file the page offers; repeat for '
                   'several (default: every model whose weights are here)')
    w.add_argument('--open', action='store_true', help='open the page in the default browser')
    w.add_argument('--export', metavar='DIR', help='write the page and its models into DIR for any static host, '
                   'instead of serving')
    w.set_defaults(func=_serve)
    return p


class _Terminated(KeyboardInterrupt):
    "SIGTERM, raised where the program is, so that temporary files are removed as on Ctrl-C."


def _terminate(signum, frame): raise _Terminated()


def _error_text(e) -> str:
    "An error for the terminal: an OSError as 'file: reason' (no errno prefix), anything else as its message."
    if isinstance(e, OSError) and e.strerror: return f'{e.filename}: {e.strerror}' if e.filename else e.strerror
    return str(e)


def main(argv=None):
    args = _parser().parse_args(argv)
    try: previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError: previous = None  # not the main thread: signals are not ours to handle
    try: return args.func(args) or 0
    except (OSError, ValueError, RuntimeError) as e:  # OSError: a full or read-only disk, a missing file
        print(f'artifact-removal: error: {_error_text(e)}', file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        what = 'terminated' if isinstance(e, _Terminated) else 'interrupted'
        print(f'\nartifact-removal: {what}{f": {e}" if str(e) else ""}; nothing half-written was left behind',
              file=sys.stderr)
        return 143 if isinstance(e, _Terminated) else 130
    finally:
        if previous is not None: signal.signal(signal.SIGTERM, previous)


if __name__ == '__main__': sys.exit(main())

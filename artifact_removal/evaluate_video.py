"""Benchmark video restoration as the compressed-video field does (MFQE, STDF: delta PSNR and SSIM per frame against
the pristine clip), with the temporal consistency measures of Lai et al. (ECCV 2018).

Each pristine clip (a folder of frames or a video file, taken as 4:2:0 video as the field's raw YUV sequences are:
`yuv.as_420`) is encoded with every codec setting (`VIDEO_SETTINGS`: H.264 at CRF 18, 30, 35 and 40, H.265 at QP
37, 4:2:0, x264/x265 `medium`), decoded, and restored by each model frame by frame and with the temporal filter
(`temporal.TemporalFilter`) on the same single-frame results. Scores per clip, setting and method: PSNR and SSIM
on RGB and PSNR on the luma (BT.601, as Y-PSNR tables report), each the mean over frames; the warping error along
the flow of the *reference* clip (its own value is reported as 'reference'); the temporal-difference error; and
frames per second (model plus filter, on this machine, at the clip's size). `VideoValidationScorer` is the small
version that training logs and the release gate read.
"""
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from fastprogress.fastprogress import progress_bar

from .clips import clip_sources, read_clip, synthetic_clip
from .evaluate import _markdown, _restorers, _write_csv, _write_text
from .image_io import find_images, load_image
from .metrics import _luma, clip_flows, psnr, ssim, temporal_difference_error, to_uint8, warping_error
from .temporal import TemporalBlend, stabilise
from .video_degrade import CodecSettings, codec_compress
from .yuv import as_420

__all__ = ['VIDEO_SETTINGS', 'FIELD_ANCHORS', 'VideoEvaluation', 'parse_setting', 'evaluate_video',
           'VideoValidationScorer']

VIDEO_SETTINGS = {'H.264 CRF 18': CodecSettings('h264', crf=18), 'H.264 CRF 30': CodecSettings('h264', crf=30),
                  'H.264 CRF 35': CodecSettings('h264', crf=35), 'H.264 CRF 40': CodecSettings('h264', crf=40),
                  'H.265 QP 37': CodecSettings('h265', qp=37)}
# Y-PSNR gain at HEVC QP 37 on the MFQE test set (18 sequences, 416x240 to 2560x1600), as the papers report it
FIELD_ANCHORS = {'DnCNN (single frame)': 0.42, 'STDF': 0.65, 'MFQE 2.0': 0.67, 'BasicVSR++': 1.08}
COLUMNS = [('setting', 'setting', ''), ('method', 'method', ''), ('d_psnr', 'ΔPSNR (dB)', '+.3f'),
           ('d_psnr_y', 'ΔY-PSNR (dB)', '+.3f'), ('d_ssim', 'ΔSSIM', '+.4f'), ('psnr', 'PSNR (dB)', '.2f'),
           ('warp_error', 'warping error (x1e-3)', '.3f'), ('tde', 'TDE (levels)', '.3f'), ('fps', 'fps', '.1f')]


def _frame_scores(ref, frames) -> dict:
    "Per-frame PSNR, Y-PSNR and SSIM of `frames` against the reference frames."
    return {'psnr': [psnr(r, f) for r, f in zip(ref, frames)],
            'psnr_y': [psnr(_luma(r), _luma(f)) for r, f in zip(ref, frames)],
            'ssim': [ssim(r, f) for r, f in zip(ref, frames)]}


def _clip_row(ref, flow, frames, /, **keys) -> dict:
    "The scores of `frames` against the reference frames `ref` and their flow, with `keys` (clip, setting...)."
    s = _frame_scores(ref, frames)
    return dict(**keys, psnr=float(np.mean(s['psnr'])), psnr_y=float(np.mean(s['psnr_y'])),
                ssim=float(np.mean(s['ssim'])), warp_error=1e3 * warping_error(frames, flow),
                tde=temporal_difference_error(frames, ref), seconds=None, per_frame_psnr=s['psnr'])


@dataclass
class VideoEvaluation:
    """`rows`: one per clip, setting and method ('input', 'reference', MODEL, MODEL + temporal), with per-frame PSNR;
    `summary`: the means per setting and method, with the gains over the input (d_psnr, d_psnr_y, d_ssim);
    `examples`: per setting, (input, frame-by-frame, temporal, reference) frames of the first clip for the figure."""
    rows: list
    summary: list
    examples: dict = field(default_factory=dict)

    def markdown(self) -> str:
        rows = [{k: (r.get(k) if r.get(k) is not None else float('nan')) for k, _, _ in COLUMNS} for r in self.summary]
        return _markdown(rows, COLUMNS).replace('nan', '-')

    def plot_per_frame(self, path=None):
        "Mean PSNR per frame index (over clips) of the input and each method, one panel per setting."
        import matplotlib.pyplot as plt
        from .visualize import save_figure
        settings = list(dict.fromkeys(r['setting'] for r in self.rows if r['method'] != 'reference'))
        fig, axs = plt.subplots(1, len(settings), figsize=(4.2 * len(settings), 3.4), squeeze=False)
        for ax, s in zip(axs[0], settings):
            for m in dict.fromkeys(r['method'] for r in self.rows if r['setting'] == s):
                curves = [r['per_frame_psnr'] for r in self.rows if r['setting'] == s and r['method'] == m]
                n = min(map(len, curves))
                ax.plot(range(1, n + 1), np.mean([c[:n] for c in curves], 0), '-' if m != 'input' else '--',
                        label=m, lw=1.2)
            ax.set(title=s, xlabel='frame', ylabel='PSNR (dB), mean over clips')
            ax.grid(alpha=.3)
        axs[0, 0].legend(fontsize=8)
        fig.tight_layout()
        return save_figure(fig, path) if path else fig

    def plot_frames(self, path=None, frac=0.4):
        """A crop of one frame per setting (two thirds into the first clip, where the input differs most from the
        reference): input | frame by frame | temporal | reference."""
        from .visualize import most_changed_crop, plot_side_by_side, save_figure
        if not self.examples: return None
        rows = []
        for names, images in self.examples.values():
            y, x, size = most_changed_crop(images[0], images[-1], frac)
            rows.append([im[y:y + size, x:x + size] for im in images])
        fig = plot_side_by_side(rows, names)
        for ax, s in zip(fig.axes[::len(names)], self.examples):
            ax.text(-0.05, 0.5, s, rotation=90, va='center', ha='right', transform=ax.transAxes)
        return save_figure(fig, path) if path else fig

    def save(self, folder) -> Path:
        "Write per_clip.csv, summary.csv, summary.md, per_frame_psnr.png and frames.png into `folder`."
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        _write_csv([{k: v for k, v in r.items() if k != 'per_frame_psnr'} for r in self.rows], folder / 'per_clip.csv')
        _write_csv(self.summary, folder / 'summary.csv')
        _write_text(self.markdown(), folder / 'summary.md')
        self.plot_per_frame(folder / 'per_frame_psnr.png')
        if self.examples: self.plot_frames(folder / 'frames.png')
        return folder


def _summarise(rows) -> list:
    "Means per (setting, method), gains over the input, fps from the summed times."
    out = []
    for s in dict.fromkeys(r['setting'] for r in rows):
        base = {k: np.mean([r[k] for r in rows if r['setting'] == s and r['method'] == 'input'])
                for k in ('psnr', 'psnr_y', 'ssim')}
        for m in dict.fromkeys(r['method'] for r in rows if r['setting'] == s):
            rs = [r for r in rows if r['setting'] == s and r['method'] == m]
            row = dict(setting=s, method=m, clips=len(rs), **{k: float(np.mean([r[k] for r in rs]))
                                                            for k in ('psnr', 'psnr_y', 'ssim', 'warp_error', 'tde')})
            row.update({f'd_{k}': row[k] - base[k] for k in ('psnr', 'psnr_y', 'ssim')})
            seconds = sum(r.get('seconds') or 0 for r in rs)
            row['fps'] = sum(r['frames'] for r in rs) / seconds if seconds else None
            out.append(row)
    return out


def parse_setting(spec) -> tuple:
    "('H.264 CRF 35', CodecSettings) from 'h264:crf=35' (CODEC:crf=N or CODEC:qp=N, a `video_degrade.CODECS` name)."
    try:
        codec, rate = spec.split(':')
        kind, value = rate.split('=')
        if kind not in ('crf', 'qp'): raise ValueError
        settings = CodecSettings(codec, **{kind: int(value) if kind == 'qp' else float(value)})
    except ValueError as e:
        why = f' ({e})' if str(e) else ''
        raise ValueError(f'{spec!r} is not a codec setting like h264:crf=35 or h265:qp=37{why}') from None
    names = {'h264': 'H.264', 'h265': 'H.265', 'mpeg4': 'MPEG-4', 'mpeg2': 'MPEG-2'}
    return f'{names[codec]} {kind.upper()} {value}', settings


def evaluate_video(models, clips, settings=None, temporal=True, out=None, max_frames=None, device=None, progress=True,
                   examples=True) -> VideoEvaluation:
    """Score the compressed input, and each of `models` frame by frame and with the temporal filter (`temporal`:
    True for the default `TemporalBlend`, a `TemporalBlend`, or False for frame by frame only),
    on the pristine clips in the folder `clips` (subfolders of frames or video files, see `clips.make_clips`)
    or a list of clip paths, encoded with each of `settings` (name -> `CodecSettings`, default `VIDEO_SETTINGS`).
    `models`: anything `evaluate` takes (registry names, weights files, nn.Modules, Restorers). `max_frames`: the
    first frames of each clip only. With `out`, the tables and figures are written there (`VideoEvaluation.save`)."""
    settings = dict(VIDEO_SETTINGS if settings is None else settings)
    temporal = TemporalBlend() if temporal is True else temporal or None
    restorers = _restorers(models, device)
    sources = clip_sources(clips) if isinstance(clips, (str, Path)) else [Path(c) for c in clips]
    rows, shown = [], {}
    for src in progress_bar(sources) if progress else sources:
        ref = as_420(read_clip(src, max_frames))  # the pristine clip as 4:2:0 video, as the field's YUV sequences
        flow, keys = clip_flows(ref), dict(clip=src.name, frames=len(ref))
        rows.append(_clip_row(ref, flow, ref, setting='(all)', method='reference', **keys))
        for name, codec in settings.items():
            compressed = codec_compress(ref, codec)
            rows.append(_clip_row(ref, flow, compressed, setting=name, method='input', **keys))
            for r in restorers:
                t = time.perf_counter()
                restored = r.restore_arrays(compressed)
                seconds = time.perf_counter() - t
                rows.append(dict(_clip_row(ref, flow, restored, setting=name, method=r.name, **keys), seconds=seconds))
                example = [compressed, restored]
                if temporal is not None:
                    t = time.perf_counter()
                    steady = list(stabilise(compressed, restored, temporal))
                    seconds += time.perf_counter() - t  # the filter runs on the model's results: both count
                    rows.append(dict(_clip_row(ref, flow, steady, setting=name, method=f'{r.name} + temporal', **keys),
                                     seconds=seconds))
                    example.append(steady)
                if examples and name not in shown and r is restorers[0]:
                    k = len(ref) * 2 // 3
                    names = ['input', r.name] + ([f'{r.name} + temporal'] if temporal is not None else [])
                    shown[name] = (names + ['reference'], [e[k] for e in example] + [ref[k]])
    ref_rows = [r for r in rows if r['method'] == 'reference']
    summary = _summarise([r for r in rows if r['method'] != 'reference'])
    if ref_rows:
        summary.append(dict(setting='(all)', method='reference', clips=len(ref_rows),
                            warp_error=float(np.mean([r['warp_error'] for r in ref_rows])), tde=0.0))
    result = VideoEvaluation(rows, summary, shown)
    if out is not None: result.save(out)
    return result


class VideoValidationScorer:
    """Scores a generator (an nn.Module on [0, 1] tensors) frame by frame on codec clips made from the validation
    photos `folder`: `n_clips` clips of `n_frames` frames of `size` (w, h), each encoded with each of `settings`.
    Keys: `video_psnr` (mean over settings), and per setting `video_gain_<name>` (PSNR gain over the input, dB);
    `video_gain` is their mean. The clips and their damage are fixed (seeded), so runs and epochs compare. With
    `jpeg` (a `ValidationScorer`), its scores come first in each row and its attributes are this scorer's: the
    training logs and the switch point read both."""
    def __init__(self, folder, n_clips=12, n_frames=6, size=(256, 192), settings=None, device='cpu', jpeg=None):
        self.jpeg = jpeg
        settings = settings or {'crf18': CodecSettings('h264', crf=18), 'crf30': CodecSettings('h264', crf=30),
                                'crf38': CodecSettings('h264', crf=38), 'hevc_qp37': CodecSettings('h265', qp=37),
                                'mpeg2_q12': CodecSettings('mpeg2', qp=12)}
        self.device, self.clips = device, []
        for i, f in enumerate(find_images(folder)[:n_clips]):
            ref = as_420(synthetic_clip(load_image(f), n_frames, size, np.random.default_rng(i)))
            self.clips.append((ref, {k: codec_compress(ref, s) for k, s in settings.items()}))
        self.settings = list(settings)
        self.inputs = self._psnrs(None)

    @torch.no_grad()
    def _psnrs(self, gen) -> dict:
        out = {}
        if gen is not None:
            gen = gen.eval()
            dev = next(gen.parameters()).device
        for k in self.settings:
            scores = []
            for ref, coded in self.clips:
                frames = coded[k]
                if gen is not None:
                    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().to(dev) / 255
                    frames = [to_uint8(o) for o in gen(x)]
                scores += [psnr(r, f) for r, f in zip(ref, frames)]
            out[k] = float(np.mean(scores))
        return out

    def __getattr__(self, name):
        if name == 'jpeg' or self.jpeg is None: raise AttributeError(name)
        return getattr(self.jpeg, name)

    def __call__(self, gen) -> dict:
        "`gen`'s scores (gen=None: the compressed input's)."
        p = self._psnrs(gen) if gen is not None else self.inputs
        row = {**(self.jpeg(gen) if self.jpeg is not None else {}), 'video_psnr': float(np.mean(list(p.values())))}
        if gen is None: return row
        gains = {f'video_gain_{k}': p[k] - self.inputs[k] for k in self.settings}
        return {**row, 'video_gain': float(np.mean(list(gains.values()))), **gains}

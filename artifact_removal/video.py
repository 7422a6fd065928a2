"""Restore videos: decode, restore in batches, steady the frames along the motion, encode, with the sound copied
untouched.

Frames stream from the decoder through `Restorer.restore_arrays` into the encoder, so a video is never held in
memory whole nor written out as JPEG frames (which would add the very artifacts being removed). Each frame keeps
its timestamp, so frame rate, frame count and duration stay as they were; audio is remuxed packet by packet,
bit-exact. Frames are converted between YUV and RGB with their chroma resampled to full resolution first (`yuv`:
FFmpeg's direct 4:2:0 conversion is a level darker and loses 4-5 dB). The video is written to a temporary file
beside `dst` and renamed only when complete, so a failure or Ctrl-C never leaves a partial video. A source that ends
before the frame count its index announces (a truncated download) is refused unless `allow_truncated`. A folder of
frames is taken as input too, and a folder as output receives the restored frames as PNG files.
"""
import warnings
from fractions import Fraction
from itertools import islice
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np
from fastprogress.fastprogress import progress_bar

from .files import atomic_path
from .image_io import ImageMeta, ImageReadError, array_to_pil, find_images, load_image, read_image, save_image
from .restore import Restorer
from .tiling import bicubic_upscale
from .temporal import TemporalBlend, TemporalFilter
from .yuv import from_rgb, to_rgb

__all__ = ['restore_video', 'video_info', 'DEFAULT_FPS']

DEFAULT_FPS = 25  # frame rate of a video made from a folder of frames when `fps` is not given
# encoder options that make `crf` a constant-quality setting (VP9 and libaom need the bitrate cap off)
CRF_OPTIONS = {'libx264': {}, 'libx265': {}, 'libsvtav1': {}, 'libvpx-vp9': {'b': '0'}, 'libaom-av1': {'b': '0'}}


def restore_video(src, dst, model='default', strength=1.0, codec='libx264', crf=18, fps=None, pix_fmt=None,
                  options=None, batch_size=4, tile=None, device=None, overwrite=False, progress=True,
                  quality=None, allow_truncated=False, temporal=True, scale=None, precision='auto') -> Path:
    """Remove compression artifacts from every frame of `src`, writing `dst`; returns `dst` as a Path.

    src: a video file (any format FFmpeg reads) or a folder of frames (image files in name order, played at
    `fps`, default `DEFAULT_FPS`; `fps` is only for frames, a video keeps its own timing).
    dst: a video file, its container named by the extension (.mp4, .mkv, .mov, .webm...), or a folder (an
    existing one, or a path without extension) that receives the restored frames as PNG files: a folder's
    frames keep their names, a video's are numbered frame_000001.png...
    The video keeps its timestamps, size, rotation and colour tags, and every audio stream is copied untouched
    (subtitle and data streams are dropped). It is encoded with `codec` (H.264 by default) at quality `crf`
    (x264/x265 0-51, VP9/AV1 0-63, lower is better; other encoders take `options`) as 8-bit `pix_fmt` (default
    yuv420p, or yuv444p when the width or height is odd, which 4:2:0 cannot hold); `options` go to the encoder,
    e.g. {'preset': 'slow'}. `model` is as for `Restorer`, or a `Restorer` to reuse (then `device` and `precision`
    are ignored);
    `batch_size` frames are restored at a time. `scale=2` (or an x2 `model`) also doubles the size of every frame
    (super-resolution; 'default' is then the registry's x2 model), timing and sound kept; the temporal filter then
    steadies the correction of the bicubic upscale. `dst` is written atomically and never replaces `src` unless
    `overwrite`. A quality-aware model estimates each frame's quality from its pixels unless `quality` is given.
    `temporal` (on by default) steadies the restored frames along the motion (`temporal.TemporalFilter`: the previous
    result, warped onto the frame by optical flow, is blended in where it matches), so restorations do not flicker
    from frame to frame; False restores each frame on its own; a `temporal.TemporalBlend` sets how it blends.
    A video whose frames end before the count its index announces (a cut download) raises a ValueError and writes
    nothing, unless `allow_truncated` (then the frames it has are written, with a warning). Ctrl-C raises
    KeyboardInterrupt saying at which frame it stopped; nothing is left half-written.
    """
    src, dst = Path(src), Path(dst)
    if not overwrite and dst.exists() and dst.resolve() == src.resolve():
        raise ValueError(f'{dst}: refusing to overwrite the input (overwrite=True, or --overwrite on the command '
                         'line, replaces it)')
    if fps is not None and not src.is_dir():
        raise ValueError(f'{src}: fps is for a folder of frames; a video keeps its own frame rate')
    to_frames = dst.is_dir() or not dst.suffix
    with _FrameFolder(src, fps, keep_meta=to_frames) if src.is_dir() else _VideoFile(src) as reader:
        restorer = model if isinstance(model, Restorer) else Restorer(model, device, tile=tile, batch_size=batch_size,
                                                                      scale=scale, precision=precision)
        if scale is not None and restorer.scale != scale:
            raise ValueError(f'{restorer.name} makes x{restorer.scale} frames, not x{scale}')
        blend = _temporal_blend(temporal, strength)
        done = [0]  # frames restored so far, for the message of an interrupted run
        def restore(frames):
            for item in _with_progress(_restored(frames, restorer, strength, tile, batch_size, quality, blend),
                                       reader.frame_count(), progress):
                yield item
                done[0] += 1
            _check_complete(reader, done[0], allow_truncated, dst, to_frames)
        try:
            if to_frames: _save_frames(restore(reader.frames()), dst)
            else: _write_video(reader, restore, dst, codec, pix_fmt, {**_crf_options(codec, crf), **(options or {})},
                               restorer.scale)
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM as the command line raises it
            total = reader.frame_count()
            kept = f'the {done[0]} frames restored are in {dst}' if to_frames else f'{dst} was not written'
            raise type(e)(f'stopped at frame {done[0] + 1}{f" of {total}" if total else ""} of {src}; '
                          f'{kept}') from None
        except OSError as e:
            if e.errno is None or e.filename == str(src): raise
            raise OSError(e.errno, f'cannot write {dst} ({e.strerror})') from None  # not the hidden temporary name
    return dst


def _check_complete(reader, n, allow_truncated, dst, to_frames):
    "Refuse (or with `allow_truncated`, warn about) a source that ended before the frames its index announces."
    announced = getattr(reader, 'announced_packets', None)
    got = getattr(reader, 'packets', None)
    if not announced or got is None or got >= announced: return
    said = (f'{reader.path}: the video ends after {got} of the {announced} frames its index announces (a truncated '
            f'file?); {n} frames were restored')
    if allow_truncated:
        warnings.warn(f'{said}, and written')
        return
    kept = f'; the restored frames are in {dst}' if to_frames else f'; {dst} was not written'
    raise ValueError(f'{said}{kept}. Pass allow_truncated=True (--allow-truncated) to keep what it has')


def video_info(path) -> dict:
    "Size, frame rate, frame count (counted from the packets), duration in seconds and codecs of a video file."
    path = Path(path)
    with _open_video(path) as container:
        stream = _video_stream(container, path)
        info = dict(width=stream.codec_context.width, height=stream.codec_context.height,
                    fps=stream.average_rate or stream.guessed_rate, codec=stream.codec_context.name,
                    pix_fmt=stream.codec_context.pix_fmt,
                    duration=container.duration / av.time_base if container.duration else None,
                    audio=[s.codec_context.name for s in container.streams.audio])
        info['frames'] = sum(1 for p in container.demux(stream) if p.size)
    return info


class _Tag(NamedTuple):
    "What travels with a frame's pixels: its time (in the source's time base), and an image file's name and meta."
    pts: int
    duration: int
    name: str = None
    meta: ImageMeta = None


def _temporal_blend(temporal, strength):
    "The `TemporalBlend` that `temporal` asks for (True: the default one), or None: none, or nothing to steady."
    if isinstance(temporal, TemporalBlend): return temporal if strength else None
    if temporal not in (True, False): raise ValueError(f'temporal is True, False or a TemporalBlend, not {temporal!r}')
    return TemporalBlend() if temporal and strength else None


def _restored(frames, restorer, strength, tile, batch_size, quality=None, blend=None):
    """(restored array, tag) for each (array, tag) of `frames`, restoring `batch_size` frames at a time, steadied by
    a `TemporalFilter` with `blend` (None: frame by frame)."""
    frames = iter(frames)
    steady = TemporalFilter(blend) if blend is not None else None
    while batch := list(islice(frames, batch_size)):
        arrays, tags = zip(*batch)
        qualities = None if quality is None else [quality] * len(arrays)
        restored = restorer.restore_arrays(list(arrays), strength, tile, qualities)
        if steady is not None:  # a super-resolution result is steadied against the upscaled frame
            restored = [steady(bicubic_upscale(x, restorer.scale), y) for x, y in zip(arrays, restored)]
        yield from zip(restored, tags)


def _with_progress(items, total, display):
    "Pass `items` through, drawing a bar with an ETA; `total` is an estimate, never a limit on how many pass."
    if not display:
        yield from items
        return
    bar = progress_bar(range(0), total=total or 'noinfer')
    bar.update(0)
    n = 0
    for n, item in enumerate(items, 1):
        yield item
        bar.update(min(n, total - 1) if total else n)
    bar.total = n
    bar.update(n)


def _crf_options(codec, crf):
    return {'crf': str(crf), **CRF_OPTIONS[codec]} if codec in CRF_OPTIONS and crf is not None else {}


# --- reading

def _open_video(path):
    "`path` opened by PyAV, or a ValueError naming it."
    try: return av.open(str(path))
    except FileNotFoundError: raise ValueError(f'{path}: no such file') from None
    except IsADirectoryError: raise ValueError(f'{path}: is a folder, not a video file') from None
    except av.FFmpegError as e:
        why = 'empty file (0 bytes)' if path.stat().st_size == 0 else f'not a readable video ({e.strerror})'
        raise ValueError(f'{path}: {why}') from None


def _video_stream(container, path):
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ['nothing']
        raise ValueError(f'{path}: no video stream (it holds {", ".join(kinds)})')
    return container.streams.video[0]


class _VideoFile:
    "The first video stream of a video file as RGB frames with their timestamps, and its audio streams to copy."
    def __init__(self, path):
        self.path, self.container = path, _open_video(path)
        try:
            self.stream = _video_stream(self.container, path)
            self.rotation = self._rotation()
        except BaseException:
            self.container.close()
            raise
        self.stream.thread_type = 'AUTO'
        ctx = self.stream.codec_context
        self.width, self.height = ctx.width, ctx.height
        self.rate = self.stream.average_rate or self.stream.guessed_rate or Fraction(DEFAULT_FPS)
        self.time_base = self.stream.time_base
        self.colors = dict(colorspace=ctx.colorspace, color_range=ctx.color_range,
                           color_primaries=ctx.color_primaries, color_trc=ctx.color_trc)
        self.sample_aspect_ratio = self.stream.sample_aspect_ratio
        self.audio, self.metadata = list(self.container.streams.audio), dict(self.container.metadata)
        self.announced_packets, self.packets = self.stream.frames, 0  # the index's count (0: none), and packets read

    def _rotation(self):
        "The display rotation, read from the first frame (FFmpeg gives it to frames only)."
        with av.open(str(self.path)) as container:
            frame = next(container.decode(video=0), None)
        if frame is None: raise ValueError(f'{self.path}: the video stream has no frames')
        return frame.rotation

    def __enter__(self): return self
    def __exit__(self, *exc): self.container.close()

    def frame_count(self):
        "The frame count the file announces, or one estimated from its duration; None when it says neither."
        s = self.stream
        if s.frames: return s.frames
        seconds = s.duration * s.time_base if s.duration else (self.container.duration or 0) / av.time_base
        return round(seconds * self.rate) or None

    def frames(self, on_audio=None):
        "(RGB uint8 array, `_Tag`) for each frame in display order; audio packets go to `on_audio` as they come."
        n = 0
        for packet in self.container.demux([self.stream] + (self.audio if on_audio else [])):
            if packet.stream.index != self.stream.index:
                if packet.dts is not None: on_audio(packet)
                continue
            if packet.size: self.packets += 1
            for frame in self._decode(packet):
                pts = frame.pts if frame.pts is not None else round(n / (self.rate * self.time_base))
                yield to_rgb(frame, src_colorspace=self.colors['colorspace'],
                             src_color_range=self.colors['color_range']), _Tag(pts, frame.duration)
                n += 1

    def _decode(self, packet):
        try: return packet.decode()
        except av.FFmpegError as e:
            at = f' at {float(packet.pts * packet.time_base):.2f}s' if packet.pts is not None else ''
            raise ValueError(f'{self.path}: cannot decode the video{at} ({e.strerror})') from None


class _FrameFolder:
    "The image files of a folder as frames, in name order, at `fps`; `keep_meta` reads them for `save_image`."
    def __init__(self, path, fps=None, keep_meta=False):
        self.path, self.files, self.keep_meta = path, find_images(path, recurse=False), keep_meta
        self.rate = Fraction(fps or DEFAULT_FPS).limit_denominator(1001)
        self.time_base, self.rotation, self.sample_aspect_ratio = 1 / self.rate, 0, None
        self.width, self.height = load_image(self.files[0]).size
        self.colors, self.audio, self.metadata = {}, [], {}

    def __enter__(self): return self
    def __exit__(self, *exc): pass
    def frame_count(self): return len(self.files)

    def frames(self, on_audio=None):
        "(array, `_Tag`): as stored (gray, alpha, 16 bit) with `keep_meta`, else RGB uint8 of one size for a video."
        for i, f in enumerate(self.files):
            if self.keep_meta:
                a, meta = read_image(f)
                yield a, _Tag(i, 1, f.name, meta)
                continue
            a = np.asarray(load_image(f))
            if a.shape[:2] != (self.height, self.width):
                raise ImageReadError(f'{f}: frame is {a.shape[1]}x{a.shape[0]}, the first is {self.width}x{self.height}')
            yield a, _Tag(i, 1, f.name)


# --- writing

def _save_frames(frames, folder):
    "Each restored frame as a PNG in `folder`: an input frame's name with .png, else frame_000001.png..."
    for i, (a, tag) in enumerate(frames, 1):
        name = Path(tag.name or f'frame_{i:06d}').with_suffix('.png')
        save_image(array_to_pil(a, tag.meta or ImageMeta('RGB')), folder / name)


def _write_video(reader, restore, dst, codec, pix_fmt, options, scale=1):
    """Encode `restore(reader.frames())` (frames `scale` times larger than `reader`'s) into `dst`, muxing `reader`'s
    audio packets as they come."""
    with atomic_path(dst) as tmp:
        with _open_output(tmp, dst) as out:
            out.metadata.update({k: v for k, v in reader.metadata.items() if k.lower() != 'encoder'})
            stream = _add_video_stream(out, dst, reader, codec, pix_fmt, options, scale)
            copies = {s.index: _add_copy(out, s, dst, reader.path) for s in reader.audio}
            on_audio = lambda packet: _mux_copy(out, packet, copies[packet.stream.index])
            colors = reader.colors
            for a, tag in restore(reader.frames(on_audio)):
                frame = from_rgb(a, stream.pix_fmt, dst_colorspace=colors.get('colorspace'),
                                 dst_color_range=colors.get('color_range'))
                frame.pts, frame.duration, frame.time_base = tag.pts, tag.duration, reader.time_base
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))


def _open_output(tmp, dst):
    try: return av.open(tmp, 'w')
    except ValueError: raise ValueError(f'{dst}: unknown video file extension {dst.suffix!r}') from None


def _add_video_stream(out, dst, reader, codec, pix_fmt, options, scale=1):
    try: av.Codec(codec, 'w')
    except ValueError: raise ValueError(f'{dst}: unknown video encoder {codec!r}') from None
    if codec not in out.supported_codecs:
        raise ValueError(f'{dst}: a {dst.suffix} file cannot hold {codec} video; pass codec='
                         f'{out.default_video_codec!r} or write .mkv')
    stream = out.add_stream(codec, rate=reader.rate)
    stream.width, stream.height = reader.width * scale, reader.height * scale
    stream.pix_fmt = pix_fmt or _default_pix_fmt(stream.width, stream.height)
    ctx = stream.codec_context
    ctx.time_base = reader.time_base
    ctx.options = options
    for k, v in reader.colors.items(): setattr(ctx, k, v)
    if reader.sample_aspect_ratio: ctx.sample_aspect_ratio = reader.sample_aspect_ratio
    if reader.rotation: stream.set_display_rotation(reader.rotation)
    return stream


def _default_pix_fmt(width, height):
    if width % 2 == 0 and height % 2 == 0: return 'yuv420p'
    warnings.warn(f'{width}x{height} has an odd side, which 4:2:0 cannot hold: encoding 4:4:4 (yuv444p), which '
                  'some players (browsers, QuickTime) do not play; crop to an even size for those')
    return 'yuv444p'


def _add_copy(out, stream, dst, src):
    "An output stream taking `stream`'s packets as they are (no re-encoding)."
    if stream.codec_context.name not in out.supported_codecs:
        raise ValueError(f'{dst}: a {dst.suffix} file cannot hold the {stream.codec_context.name} audio of {src}; '
                         'write .mkv, which holds any audio')
    copy = out.add_stream_from_template(stream)
    copy.metadata.update({k: v for k, v in stream.metadata.items() if k.lower() in ('language', 'title')})
    return copy


def _mux_copy(out, packet, stream):
    packet.stream = stream
    out.mux(packet)

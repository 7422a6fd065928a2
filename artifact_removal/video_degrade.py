"""Video codec degradations: what H.264, H.265, MPEG-4 part 2 and MPEG-2 do to frames, made by the encoders that real
files come from (x264, x265 and FFmpeg's own MPEG encoders, through PyAV).

A clip is a list of HxWx3 uint8 RGB frames of one even size. `codec_compress(frames, CodecSettings(...))` encodes
it in memory as 4:2:0 video (I, P and B frames, the encoder's in-loop deblocking as it applies it) and decodes it
again: the same number of frames back, in display order. Frames go to and from YUV through `yuv` (accurate chroma
resampling), so what differs from the clip as a 4:2:0 video shows it (`yuv.as_420`) is the codec's damage alone.
The encoders run on one thread (and x264 CPU-independent), so the same frames and settings give the same frames
back bit for bit; `VideoDegradation` draws random settings from a
`numpy.random.Generator`, so a seed reproduces a sample exactly (as `degrade.JPEGDegradation` does for JPEG).
"""
import io
from dataclasses import dataclass

import av
import numpy as np

from .yuv import from_rgb, to_rgb

__all__ = ['CODECS', 'PRESETS', 'CodecSettings', 'encode_clip', 'decode_clip', 'codec_compress', 'VideoDegradation']

# short name -> FFmpeg encoder; x264/x265 take a CRF or a QP (0-51), the MPEG encoders a quantiser scale (1-31)
CODECS = {'h264': 'libx264', 'h265': 'libx265', 'mpeg4': 'mpeg4', 'mpeg2': 'mpeg2video'}
PRESETS = ('ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow', 'slower', 'veryslow')
_X26X = ('h264', 'h265')


@dataclass(frozen=True)
class CodecSettings:
    """How a clip is encoded. `codec`: a `CODECS` name. Rate control: `crf` (x264/x265 constant rate factor, 0-51)
    or `qp` (a constant quantiser: 0-51 for x264/x265, the quantiser scale 1-31 for MPEG-4 and MPEG-2, as `-q:v`).
    `preset` (x264/x265 speed preset: ultrafast also turns x264's deblocking off), `bframes` (B-frames between
    references), `gop` (frames between I-frames). 4:2:0 (yuv420p) always: what delivered video is."""
    codec: str = 'h264'
    crf: float = None
    qp: int = None
    preset: str = 'medium'
    bframes: int = 3
    gop: int = 250

    def __post_init__(self):
        if self.codec not in CODECS: raise ValueError(f'unknown codec {self.codec!r}; choose from {", ".join(CODECS)}')
        if (self.crf is None) == (self.qp is None): raise ValueError('give exactly one of crf and qp')
        if self.crf is not None and (self.codec not in _X26X or not 0 <= self.crf <= 51):
            raise ValueError(f'crf is for h264 and h265, 0..51; got {self.crf} for {self.codec}')
        top = 51 if self.codec in _X26X else 31
        if self.qp is not None and not (0 if self.codec in _X26X else 1) <= self.qp <= top:
            raise ValueError(f'qp of {self.codec} is in {0 if self.codec in _X26X else 1}..{top}, got {self.qp}')
        if self.preset not in PRESETS:
            raise ValueError(f'unknown preset {self.preset!r}; choose from {", ".join(PRESETS)}')
        if self.bframes < 0 or self.gop < 1:
            raise ValueError(f'bframes >= 0 and gop >= 1, got {self.bframes}, {self.gop}')

    def __str__(self):
        rate = f'crf{self.crf:g}' if self.crf is not None else f'qp{self.qp}'
        return f'{self.codec} {rate}' + (f' {self.preset}' if self.codec in _X26X and self.preset != 'medium' else '')

    def options(self) -> dict:
        """The encoder's AVOptions: rate control and preset, one thread, x265 quiet. x264 also runs its
        macroblock-tree step in plain C (`cpu-independent`): its SIMD versions gave other frames on a second
        encode of the same clip, late in a long process, and other CPUs would round it otherwise too."""
        if self.codec == 'h264':
            return {'preset': self.preset, 'threads': '1', 'x264-params': 'cpu-independent=1', **({'crf': f'{self.crf:g}'} if self.crf is not None
                                                              else {'qp': str(self.qp)})}
        if self.codec == 'h265':
            rate = f'crf={self.crf:g}' if self.crf is not None else f'qp={self.qp}'
            return {'preset': self.preset, 'x265-params': f'{rate}:log-level=error:pools=none:frame-threads=1'}
        return {'qmin': str(self.qp), 'qmax': str(self.qp), 'threads': '1'}  # a constant quantiser scale


def encode_clip(frames, settings: CodecSettings, fps=25) -> bytes:
    "`frames` (HxWx3 uint8 RGB, even sides) encoded with `settings` into an in-memory Matroska file."
    frames = list(frames)
    if not frames: raise ValueError('no frames to encode')
    h, w = frames[0].shape[:2]
    if h % 2 or w % 2: raise ValueError(f'4:2:0 video needs even sides, got {w}x{h}')
    buf = io.BytesIO()
    with av.open(buf, 'w', format='matroska') as out:
        stream = out.add_stream(CODECS[settings.codec], rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, 'yuv420p'
        ctx = stream.codec_context
        ctx.max_b_frames, ctx.gop_size, ctx.thread_count = settings.bframes, settings.gop, 1
        ctx.options = settings.options()
        for i, f in enumerate(frames):
            if f.shape[:2] != (h, w): raise ValueError(f'frame {i} is {f.shape[1]}x{f.shape[0]}, the first {w}x{h}')
            out.mux(stream.encode(from_rgb(f, 'yuv420p')))
        out.mux(stream.encode(None))
    return buf.getvalue()


def decode_clip(data: bytes) -> list:
    "The frames of an encoded clip (`encode_clip`'s bytes) as HxWx3 uint8 RGB arrays, in display order."
    with av.open(io.BytesIO(data)) as container:
        container.streams.video[0].thread_count = 1
        return [to_rgb(f) for f in container.decode(video=0)]


def codec_compress(frames, settings: CodecSettings, fps=25) -> list:
    "Encode `frames` with `settings` and decode them again: the frames a viewer of that video sees."
    frames = list(frames)
    out = decode_clip(encode_clip(frames, settings, fps))
    if len(out) != len(frames): raise RuntimeError(f'{settings}: {len(frames)} frames encoded, {len(out)} decoded')
    return out


def _pick(rng, options, weights):
    p = np.asarray(weights, float)
    return options[int(rng.choice(len(options), p=p / p.sum()))]


@dataclass
class VideoDegradation:
    """Random codec damage for training clips: the codec (weights `codec_weights` over h264, h265, mpeg4, mpeg2),
    its rate (x264/x265: CRF from `crf`, or with probability `p_qp` a QP from `qp`; MPEG-4/MPEG-2: a quantiser
    scale from `qscale`), drawn toward heavy damage by `bias` (as JPEG qualities are), a preset, 0-3 B-frames and a
    GOP from a few frames (an extra I-frame inside a short clip) to the encoders' default."""
    codec_weights: tuple = (0.5, 0.3, 0.1, 0.1)
    crf: tuple = (18, 45)
    qp: tuple = (22, 45)
    qscale: tuple = (2, 24)
    p_qp: float = 0.3
    bias: float = 0.7
    presets: tuple = ('ultrafast', 'veryfast', 'faster', 'fast', 'medium', 'slow')
    preset_weights: tuple = (0.1, 0.2, 0.1, 0.15, 0.35, 0.1)

    def sample(self, rng: np.random.Generator) -> CodecSettings:
        "Settings drawn from `rng`."
        codec = _pick(rng, list(CODECS), self.codec_weights)
        heavy = lambda lo, hi: int(round(lo + (hi - lo) * rng.random() ** self.bias))  # bias < 1: high ones more often
        if codec in _X26X:
            rate = {'qp': heavy(*self.qp)} if rng.random() < self.p_qp else {'crf': heavy(*self.crf)}
        else: rate = {'qp': heavy(*self.qscale)}
        gop = int(_pick(rng, [6, 12, 30, 250], [0.15, 0.2, 0.25, 0.4]))
        return CodecSettings(codec, preset=_pick(rng, list(self.presets), self.preset_weights) if codec in _X26X
                             else 'medium', bframes=int(rng.integers(0, 4)), gop=gop, **rate)

    def __call__(self, frames, rng: np.random.Generator = None, fps=25) -> tuple:
        "(decoded frames, the settings drawn)"
        settings = self.sample(np.random.default_rng() if rng is None else rng)
        return codec_compress(frames, settings, fps), settings


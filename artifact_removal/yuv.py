"""RGB arrays to and from PyAV video frames in subsampled YUV (4:2:0, 4:2:2), with accurate chroma resampling.

FFmpeg's swscale converts yuv420p to rgb24 in one fast step that is about one level darker on average than the
picture and caps a lossless round trip near 44 dB on photos. Resampling the chroma to 4:4:4 first (bicubic) and
converting that is unbiased and gives 48-51 dB (4:2:0 keeps a quarter of the chroma: that much is lost by any
converter). Every conversion between RGB and subsampled video here and in `video` goes through these two functions.
"""
import av
import numpy as np

__all__ = ['to_rgb', 'from_rgb', 'as_420']


def _full_chroma(pix_fmt: str):
    "The 4:4:4 format to resample a subsampled YUV `pix_fmt` into, or None when it is not subsampled YUV."
    fmt = av.VideoFormat(pix_fmt)
    if fmt.is_rgb or len(fmt.components) < 3 or fmt.chroma_width(64) == 64 and fmt.chroma_height(64) == 64: return None
    if pix_fmt.startswith('yuvj'): return 'yuvj444p'
    return 'yuv444p16le' if max(c.bits for c in fmt.components) > 8 else 'yuv444p'


def to_rgb(frame: av.VideoFrame, **kwargs) -> np.ndarray:
    """A decoded frame as an HxWx3 uint8 RGB array, its chroma resampled to full resolution first (bicubic) when
    it is subsampled, placed as `from_rgb` places it (a decoder's chroma-siting tag is left out, so what `from_rgb`
    wrote comes back as it was); `kwargs` go to `VideoFrame.to_ndarray` (src_colorspace, src_color_range)."""
    full = _full_chroma(frame.format.name)
    if full:
        try: frame = av.VideoFrame.from_ndarray(frame.to_ndarray(), format=frame.format.name)
        except (ValueError, TypeError): pass  # a format numpy cannot hold: converted with the decoder's chroma siting
        frame = frame.reformat(format=full, interpolation='BICUBIC')
    return frame.to_ndarray(format='rgb24', **kwargs)


def from_rgb(a: np.ndarray, pix_fmt='yuv420p', **kwargs) -> av.VideoFrame:
    """An HxWx3 uint8 RGB array as a video frame in `pix_fmt`: converted at full chroma resolution, then the chroma
    resampled down (bicubic) when `pix_fmt` is subsampled; `kwargs` go to `reformat` (dst_colorspace,
    dst_color_range)."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(a, np.uint8), format='rgb24')
    full = _full_chroma(pix_fmt)
    if not full: return frame.reformat(format=pix_fmt, **kwargs)
    return frame.reformat(format=full, **kwargs).reformat(format=pix_fmt, interpolation='BICUBIC')


def as_420(frames) -> list:
    """RGB frames as a 4:2:0 video shows them without any codec (YUV 4:2:0 and back): a pristine clip as the video
    field has it (raw YUV 4:2:0 sequences), what a codec's output is measured against."""
    return [to_rgb(from_rgb(a)) for a in frames]

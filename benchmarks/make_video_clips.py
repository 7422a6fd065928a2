"""Pristine clips for `artifact-removal eval-video`, made from still photos (a camera panning, zooming and turning a
little over each), one folder of PNG frames per photo.

    python benchmarks/make_video_clips.py ../shared/data/test/live1_color /tmp/clips/live1 --size 352 288 --frames 24

Make evaluation clips from `test/` photos only, and validation or training clips from `valid/` and `train/`.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from artifact_removal.clips import make_clips  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('images', help='folder of photos')
    p.add_argument('out', help='folder that receives one subfolder of frames per photo')
    p.add_argument('--size', type=int, nargs=2, default=(352, 288), metavar=('W', 'H'), help='frame size (CIF default)')
    p.add_argument('--frames', type=int, default=24)
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args()
    folders = make_clips(a.images, a.out, tuple(a.size), a.frames, a.seed)
    print(f'{len(folders)} clips of {a.frames} frames ({a.size[0]}x{a.size[1]}) in {a.out}')


if __name__ == '__main__': main()

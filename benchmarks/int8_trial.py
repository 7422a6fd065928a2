"""Would int8 make the default faster on the CPU without losing the restoration? onnxruntime's static quantization
(QDQ, int8 weights per channel, uint8 activations calibrated on validation crops) of the default's ONNX graph, against
the fp32 graph in the same run: PSNR gain over the JPEG input on `valid/` crops, and seconds per image.

    python benchmarks/int8_trial.py --out docs/benchmarks/int8.md

Variants: everything quantized; the quality conditioning (FiLM), its feature scaling and the last convolution, add
and clip kept in fp32; the same with percentile calibration instead of min-max. Calibration crops (16) and scored crops
(the first `--crops`) are different `valid/` images; never test images.
"""
import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from artifact_removal.evaluate import centre_crops, opencv_jpeg_rgb  # noqa: E402
from artifact_removal.export import export_onnx  # noqa: E402
from artifact_removal.metrics import psnr  # noqa: E402
from release_checks import table  # noqa: E402  (benchmarks/, beside this file)

CALIBRATION_QUALITIES = (10, 30, 50, 75, 95)


def _input(a, q): return {'image': a.astype(np.float32).transpose(2, 0, 1)[None] / 255,
                          'quality': np.array([[q]], np.float32)}


def _kept_in_fp32(graph) -> list:
    "FiLM (the quality's MLP and its scaling of the features) and the end of the graph: the last conv, add and clip."
    import onnx
    names = [n.name for n in onnx.load(graph).graph.node]
    return [n for n in names if 'film' in n or re.fullmatch(r'/model/(Mul|Add)(_\d+)?', n) or 'layers.12' in n
            or n == '/Clip']


def quantized(graph, out, crops, keep=False, method='minmax'):
    "`graph` quantized to int8 (QDQ) into `out`, calibrated on `crops` JPEG-compressed at the calibration qualities."
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            q = lambda i: CALIBRATION_QUALITIES[i % len(CALIBRATION_QUALITIES)]
            self.items = iter([_input(opencv_jpeg_rgb(c, q(i)), q(i)) for i, c in enumerate(crops)])
        def get_next(self): return next(self.items, None)

    quantize_static(graph, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    nodes_to_exclude=_kept_in_fp32(graph) if keep else [],
                    calibrate_method={'minmax': CalibrationMethod.MinMax, 'percentile': CalibrationMethod.Percentile}[method])
    return out


def main():
    import onnxruntime as ort
    from onnxruntime.quantization.shape_inference import quant_pre_process
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--valid', default=str(Path(__file__).resolve().parents[2] / 'shared/data/valid'))
    p.add_argument('--crops', type=int, default=30, help='valid/ crops scored (256 px)')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--out', help='Markdown file to write')
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    graph = str(tmp / 'pre.onnx')
    quant_pre_process(str(export_onnx('default', tmp / 'fp32.onnx')), graph, skip_symbolic_shape=True)
    crops = [np.asarray(c) for c in centre_crops(a.valid, 100, 256)]
    scored, calibration = crops[:a.crops], crops[50:66]
    variants = {'fp32': graph,
                'int8, all': quantized(graph, str(tmp / 'all.onnx'), calibration),
                'int8, FiLM and end in fp32': quantized(graph, str(tmp / 'keep.onnx'), calibration, keep=True),
                'int8, FiLM and end in fp32, percentile': quantized(graph, str(tmp / 'pct.onnx'), calibration, True,
                                                                    'percentile')}
    opts = ort.SessionOptions(); opts.intra_op_num_threads = a.threads
    sessions = {k: ort.InferenceSession(v, opts, providers=['CPUExecutionProvider']) for k, v in variants.items()}
    run = lambda s, img, q: (s.run(None, _input(img, q))[0][0].transpose(1, 2, 0) * 255).round().clip(0, 255).astype(np.uint8)
    rows = []
    for name, s in sessions.items():
        row = {'graph': name}
        for q in (10, 30, 95):
            inputs = [opencv_jpeg_rgb(c, q) for c in scored]
            row[f'q{q} gain (dB)'] = np.mean([psnr(c, run(s, j, q)) - psnr(c, j) for c, j in zip(scored, inputs)])
        for h, w in ((512, 512), (1080, 1920)):
            img = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
            run(s, img, 30)
            t0 = time.perf_counter(); run(s, img, 30); row[f'{h}x{w} (s)'] = time.perf_counter() - t0
        rows.append(row)
        print(row, flush=True)
    base = rows[0]
    for r in rows: r['speed-up at 1080p'] = base['1080x1920 (s)'] / r['1080x1920 (s)']
    text = [f'`python {" ".join(sys.argv)}` ({a.threads} thread(s), {a.crops} valid/ crops of 256 px, '
            f'{len(calibration)} others for calibration)', '', table(rows)]
    print('\n'.join(text))
    if a.out: Path(a.out).write_text('\n'.join(text) + '\n')


if __name__ == '__main__': main()

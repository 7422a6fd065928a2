"""Model lookup and download: bundled, cached, fetched from a local HTTP server with a sha256 check; the
release tool's training-time bookkeeping."""
import functools
import hashlib
import http.server
import importlib.util
import json
import threading
import time
from pathlib import Path

import pytest

from artifact_removal import registry
from artifact_removal.registry import ModelDownloadError, ModelInfo


def test_bundled_default_matches_its_checksum():
    name = registry.default_model()
    path = registry.model_path(name, download=False)
    assert path.parent == registry.bundled_dir() and registry.sha256sum(path) == registry.get_model_info(name).sha256


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ValueError, match=registry.default_model()): registry.get_model_info('no-such-model')


@pytest.fixture
def server(tmp_path):
    "An HTTP server on 127.0.0.1 serving tmp_path/www; yields its base URL."
    www = tmp_path / 'www'; www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{httpd.server_port}', www
    httpd.shutdown()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv('ARTIFACT_REMOVAL_HOME', str(tmp_path / 'cache'))
    return tmp_path / 'cache'


def _serve(www, url, name, data, sha=None):
    (www / f'{name}.safetensors').write_bytes(data)
    return registry.register_model(ModelInfo(name, f'{name}.safetensors', sha or hashlib.sha256(data).hexdigest(),
                                             'mobilenetv3_small_100', url=f'{url}/{name}.safetensors'))


def test_download_checks_sha_and_caches(server, cache):
    url, www = server
    data = registry.model_path(registry.default_model()).read_bytes()
    _serve(www, url, 'served', data)
    path = registry.model_path('served')
    assert path == cache / 'served.safetensors' and path.read_bytes() == data
    from artifact_removal import Restorer
    assert Restorer('served', device='cpu').model is not None


def test_checksum_mismatch_leaves_nothing(server, cache):
    url, www = server
    _serve(www, url, 'corrupt', b'x' * 1000, sha='0' * 64)
    with pytest.raises(ModelDownloadError, match='does not match the sha256'): registry.download_model('corrupt')
    assert not cache.exists() or not list(cache.iterdir())


def test_no_server_leaves_nothing(cache):
    registry.register_model(ModelInfo('offline', 'offline.safetensors', '0' * 64, 'mobilenetv3_small_100',
                                      url='http://127.0.0.1:9/offline.safetensors'))
    with pytest.raises(ModelDownloadError, match='could not download'): registry.model_path('offline')
    assert not cache.exists() or not list(cache.iterdir())


def test_cut_connection_leaves_nothing(cache):
    "A server that promises more bytes than it sends."
    class Short(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.send_header('Content-Length', '100000'); self.end_headers()
            self.wfile.write(b'y' * 1000)
        def log_message(self, *a): pass
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Short)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    registry.register_model(ModelInfo('cut', 'cut.safetensors', '0' * 64, 'mobilenetv3_small_100',
                                      url=f'http://127.0.0.1:{httpd.server_port}/cut.safetensors'))
    try:
        with pytest.raises(ModelDownloadError): registry.download_model('cut', progress=False)
    finally: httpd.shutdown()
    assert not cache.exists() or not list(cache.iterdir())


def _serve_handler(handler):
    "An HTTP server on 127.0.0.1 answering with `handler` (a BaseHTTPRequestHandler class); its base URL and server."
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f'http://127.0.0.1:{httpd.server_port}', httpd


def test_entry_without_sha256_is_not_downloaded(server, cache):
    "Before: an empty sha256 downloaded whatever the server sent, unchecked."
    url, www = server
    info = _serve(www, url, 'unchecked', b'anything')
    for sha in ('', 'abc123', None):
        registry.register_model(ModelInfo('unchecked', info.file, sha, info.arch, url=info.url))
        with pytest.raises(ModelDownloadError, match="no sha256 .* not downloading it unchecked"):
            registry.model_path('unchecked')
    assert not cache.exists() or not list(cache.iterdir())


def test_cut_connection_is_caught_by_size_and_hash(cache):
    "The true sha256, a connection that ends early: with or without a Content-Length, nothing is kept."
    whole = bytes(range(256)) * 400
    class Cut(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            if 'length' in self.path: self.send_header('Content-Length', str(len(whole)))
            self.end_headers()
            self.wfile.write(whole[:1000])
        def log_message(self, *a): pass
    url, httpd = _serve_handler(Cut)
    try:
        for path, why in [('length.safetensors', 'ended after 1000 of 102400 bytes'),
                          ('none.safetensors', 'does not match the sha256')]:
            registry.register_model(ModelInfo('cut2', path, hashlib.sha256(whole).hexdigest(), 'mobilenetv3_small_100',
                                              url=f'{url}/{path}'))
            with pytest.raises(ModelDownloadError, match=why): registry.download_model('cut2', progress=False)
    finally: httpd.shutdown()
    assert not cache.exists() or not list(cache.iterdir())


@pytest.mark.parametrize('when', ['before_headers', 'mid_body'])
def test_stalled_server_times_out(cache, when):
    "Before: no timeout, a server that stops answering hung the caller forever."
    release = threading.Event()
    class Stall(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if when == 'mid_body':
                self.send_response(200); self.send_header('Content-Length', '5000'); self.end_headers()
                self.wfile.write(b'z' * 100); self.wfile.flush()
            release.wait(30)
        def log_message(self, *a): pass
    url, httpd = _serve_handler(Stall)
    registry.register_model(ModelInfo('stall', 'stall.safetensors', '0' * 64, 'mobilenetv3_small_100',
                                      url=f'{url}/stall.safetensors'))
    start = time.perf_counter()
    try:
        with pytest.raises(ModelDownloadError, match=r'no answer for 0.5 s \(the server stalled\); nothing was saved'):
            registry.download_model('stall', progress=False, timeout=0.5)
    finally:
        release.set(); httpd.shutdown()
    assert time.perf_counter() - start < 10
    assert not cache.exists() or not list(cache.iterdir())


def test_corrupt_cached_file_is_fetched_again(server, cache):
    "A truncated file already in the cache (from an older version, or copied by hand) is not used as it is."
    url, www = server
    data = registry.model_path(registry.default_model()).read_bytes()
    _serve(www, url, 'recached', data)
    cache.mkdir(parents=True, exist_ok=True)
    (cache / 'recached.safetensors').write_bytes(data[:1000])
    with pytest.warns(UserWarning, match='does not match the sha256 .* downloading it again'):
        path = registry.model_path('recached')
    assert path.read_bytes() == data
    (cache / 'recached.safetensors').write_bytes(data[:1000])
    with pytest.raises(FileNotFoundError, match='does not match'): registry.model_path('recached', download=False)


def _tool(name):
    "A project tool from tools/ (scripts, not part of the package) as a module."
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / 'tools' / f'{name}.py')
    tool = importlib.util.module_from_spec(spec); spec.loader.exec_module(tool)
    return tool


def test_cumulative_training_counts_from_the_latest_fresh_start():
    tool = _tool('publish_model')
    run = lambda secs, init: {'stage_seconds': {'gen_pretrain': secs}, 'config': {'init': init}}
    assert tool.training_seconds([run(100, ''), run(50, 'models/fidelity.safetensors')]) == 150
    assert tool.training_seconds([run(100, ''), run(50, 'models/x.safetensors'), run(20, '')]) == 20  # new network
    assert tool.training_seconds([run(30, 'models/fidelity.safetensors')]) == 30


def test_a_run_continued_from_an_unpublished_run_logs_both(tmp_path):
    "Training that was never published on its own still counts once its continuation is published."
    tool = _tool('publish_model')
    def make_run(name, init, seconds):
        run = tmp_path / name; run.mkdir()
        (run / 'config.json').write_text(json.dumps({'config': {'init': init}}))
        (run / 'times.json').write_text(json.dumps({'gen_pretrain': seconds}))
        return run
    first = make_run('first', 'models/perceptual.safetensors', 100)
    second = make_run('second', str(first / 'gen_pretrain.pth'), 40)
    third = make_run('third', str(second / 'gen_pretrain_ckpt.pth'), 10)
    assert tool.earlier_runs(third) == [first, second]
    assert tool.earlier_runs(first) == []
    entries = tool.log_entries(third, 'gen_pretrain', third / 'gen_pretrain.pth', 'cpu')
    assert [e['run'] for e in entries] == [str(first), str(second), str(third)]
    assert [e['weights'] for e in entries] == [str(first / 'gen_pretrain.pth'), str(second / 'gen_pretrain_ckpt.pth'),
                                               str(third / 'gen_pretrain.pth')]
    assert tool.training_seconds(entries) == 150
    assert tool.earlier_runs(third, logged={str(first)}) == [second]  # published before: counted already


def test_a_run_from_another_models_weights_continues_that_models_history(tmp_path):
    "perceptual trained from fidelity's weights: its history is fidelity's sessions, not the previous perceptual's."
    from artifact_removal.registry import model_path
    tool = _tool('publish_model')
    log = {'fidelity': [{'run': 'f1'}], 'perceptual': [{'run': 'p1'}]}
    new = lambda init: [{'run': 'r', 'config': {'init': str(init)}}]
    older = tmp_path / 'fidelity.safetensors'; older.write_bytes(b'older weights under the same name')
    assert tool.logged_lineage('perceptual', new(model_path('fidelity')), log) == [{'run': 'f1'}]
    assert tool.logged_lineage('perceptual', new(model_path('perceptual')), log) == [{'run': 'p1'}]
    assert tool.logged_lineage('perceptual', new('runs/a/gen_pretrain.pth'), log) == [{'run': 'p1'}]
    assert tool.logged_lineage('sr2', new(older), log) == []  # not the published fidelity: its log does not apply
    # sessions logged with the sha256 they published: a run from older weights continues the sessions up to them
    log['fidelity'] = [{'run': 'f0', 'sha256': tool.sha256sum(older)}, {'run': 'f1'}]
    assert tool.logged_lineage('sr2', new(older), log) == [log['fidelity'][0]]


def test_release_gate_holds_the_no_harm_bar_or_less_harm_than_the_published(monkeypatch):
    tool = _tool('publish_model')
    rows = {'new': dict(smooth_q95_gain=-0.6, smooth_q75_gain=-0.4, smooth_shift=0.35, luma_grid=1.07, chroma_grid=1.12),
            'old': dict(smooth_q95_gain=-2.7, smooth_q75_gain=-2.8, smooth_shift=1.0, luma_grid=1.1, chroma_grid=1.22),
            'good': dict(smooth_q95_gain=0.0, smooth_q75_gain=0.3, smooth_shift=0.1, luma_grid=1.07, chroma_grid=1.1)}
    monkeypatch.setattr(tool, 'ValidationScorer', lambda *a, **kw: lambda model: rows[model])
    assert tool.release_gate('good', 'valid', 'smooth') == [] and tool.release_gate('good', 'valid', 'smooth', 'old') == []
    assert len(tool.release_gate('new', 'valid', 'smooth')) == 3  # no published model: the bar itself
    assert tool.release_gate('new', 'valid', 'smooth', 'old') == []  # short of the bar, but less harm than the old
    assert len(tool.release_gate('old', 'valid', 'smooth', 'new')) == 5  # more harm and grid than the published
    assert 'chroma grid' in tool.release_gate('new', 'valid', 'smooth', 'good')[0]  # more grid than the published


def test_training_history_counts_hours_across_sessions(tmp_path):
    plot_training_history = _tool('plot_training_history').plot_training_history
    rows = lambda p0: [{'epoch': e, 'seconds': 1800. * e, 'psnr': p0 + e / 10, 'stlpips': .1} for e in (1, 2)]
    sessions = [{'hardware': '2-core CPU (no GPU)', 'stage_seconds': {'gen_pretrain': 3600.}, 'validation': rows(25),
                 'config': {}},
                {'hardware': 'NVIDIA H100 (lent GPU machine)', 'stage_seconds': {'gen_pretrain': 3600.},
                 'validation': rows(26), 'config': {'valid_images': 100}}]
    psnr_panel = plot_training_history(sessions).axes[0]
    old_set, new_set, gpu = psnr_panel.get_lines()
    assert (old_set.get_label(), new_set.get_label(), gpu.get_label()) == ('valid/, 40 crops', 'valid/, 100 crops', 'on a GPU')
    assert list(new_set.get_xdata()) == [1.5, 2.0]  # the second session starts after the first one's hour
    assert list(gpu.get_ydata()) == list(new_set.get_ydata())  # only the GPU session's points are marked
    assert plot_training_history(sessions, tmp_path / 'h.png').stat().st_size > 0
    for not_entries in ('models/training_log.json', [{'validation': rows(25)}]):  # a path, an entry without times
        with pytest.raises(TypeError, match='training-log entries'): plot_training_history(not_entries)
    with pytest.raises(ValueError, match='no validation scores'): plot_training_history([{**sessions[0], 'validation': None}])


def test_publish_lock_lets_one_release_at_a_time(tmp_path, capsys):
    "A second publish_model into the same models folder waits for the first, then reads what it wrote."
    import threading
    import time
    tool = _tool('publish_model')
    events = []
    def second():
        with tool.publish_lock(tmp_path): events.append('second')
    with tool.publish_lock(tmp_path):
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.5)
        events.append('first done')
    t.join(5)
    assert events == ['first done', 'second'] and 'waiting for another publish_model' in capsys.readouterr().out

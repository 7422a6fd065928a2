"""Model lookup and download: bundled, cached, fetched from a local HTTP server with a sha256 check; the
release tool's training-time bookkeeping."""
import functools
import hashlib
import http.server
import importlib.util
import json
import threading
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


def _publish_tool():
    spec = importlib.util.spec_from_file_location('publish_model', Path(__file__).parents[1] / 'tools' / 'publish_model.py')
    tool = importlib.util.module_from_spec(spec); spec.loader.exec_module(tool)
    return tool


def test_cumulative_training_counts_from_the_latest_fresh_start():
    tool = _publish_tool()
    run = lambda secs, init: {'stage_seconds': {'gen_pretrain': secs}, 'config': {'init': init}}
    assert tool.training_seconds([run(100, ''), run(50, 'models/fidelity.safetensors')]) == 150
    assert tool.training_seconds([run(100, ''), run(50, 'models/x.safetensors'), run(20, '')]) == 20  # new network
    assert tool.training_seconds([run(30, 'models/fidelity.safetensors')]) == 30


def test_a_run_continued_from_an_unpublished_run_logs_both(tmp_path):
    "Training that was never published on its own still counts once its continuation is published."
    tool = _publish_tool()
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

"""enable_compilation_cache(): a second process loads the compiled simulation from disk."""

import os
import subprocess
import sys
import textwrap

import pytest

import jaxcell as jc

_SCRIPT = textwrap.dedent("""
    import sys
    import jax
    from jax._src import monitoring
    import jaxcell as jc

    hits = []
    monitoring.register_event_listener(
        lambda event, **kw: hits.append(event)
        if event == "/jax/compilation_cache/cache_hits" else None)
    jc.enable_compilation_cache(sys.argv[1])
    tr = jc.simulate(jc.models.toggle_switch(), 0.0, 5.0, saveat=[0.0, 5.0], throw=False)
    jax.block_until_ready(tr.values)
    print("HITS", len(hits), "SUCCESS", bool(tr.success))
""")


def _run(cache_dir):
    env = dict(os.environ, EQX_ON_ERROR="nan")
    out = subprocess.run([sys.executable, "-c", _SCRIPT, str(cache_dir)], env=env,
                         capture_output=True, text=True, timeout=300, check=True)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("HITS")][-1]
    _, hits, _, success = line.split()
    return int(hits), success == "True"


def test_second_process_loads_the_simulation_from_the_cache(tmp_path):
    hits1, ok1 = _run(tmp_path)
    entries = sorted(p.name for p in tmp_path.iterdir())
    assert ok1 and hits1 == 0
    assert any(name.startswith("jit__solve") for name in entries), entries
    hits2, ok2 = _run(tmp_path)
    assert ok2 and hits2 >= 1


def test_warns_when_runtime_checks_stay_host_callbacks(tmp_path, monkeypatch):
    import jax
    from equinox import _config

    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")
    saved = {n: getattr(jax.config, n) for n in names}
    monkeypatch.setattr(_config, "EQX_ON_ERROR", "raise")
    try:
        with pytest.warns(UserWarning, match="EQX_ON_ERROR=nan"):
            assert jc.enable_compilation_cache(tmp_path) == tmp_path
        assert jax.config.jax_compilation_cache_dir == str(tmp_path)
    finally:
        for n, v in saved.items():
            jax.config.update(n, v)

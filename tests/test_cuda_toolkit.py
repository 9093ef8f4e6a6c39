"""How the custom ops find the CUDA toolkit and the headers a minimal one lacks (patch 0006), on made-up machines
laid out as real ones are: the audit's nvcc wrapper script outside the toolkit, PyTorch's nvidia-* pip packages."""

import os

import pytest
import torch

from torch_utils import custom_ops

TOOLKIT_HEADERS = ['cuda_runtime_api.h', 'crt/host_defines.h']
LIBRARY_HEADERS = ['cublas_v2.h', 'cublasLt.h', 'cusparse.h', 'cusolverDn.h']


def headers(folder, names):
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text('')
    return folder


def script(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('#!/bin/sh\n' + text + '\n')
    path.chmod(0o755)


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A toolkit with its own headers only, reached through /usr/local/bin-style nvcc wrapper; the pip packages
    hold the libraries' headers and the runtime's, but not crt/host_defines.h (as CUDA 13's do)."""
    toolkit = tmp_path / 'cuda-13.0'
    toolkit_include = headers(toolkit / 'targets' / 'x86_64-linux' / 'include', TOOLKIT_HEADERS)
    script(toolkit / 'bin' / 'nvcc', f"echo '#$ _HERE_={toolkit}/bin' >&2; echo '#$ TOP={toolkit}/bin/..' >&2")
    script(tmp_path / 'bin' / 'nvcc', f'exec {toolkit}/bin/nvcc "$@"')
    site_packages = tmp_path / 'site-packages'
    pip_include = headers(site_packages / 'nvidia' / 'cu13' / 'include', ['cuda_runtime_api.h', *LIBRARY_HEADERS])
    monkeypatch.setenv('PATH', f'{tmp_path / "bin"}{os.pathsep}{os.defpath}')
    for variable in ('CUDA_HOME', 'CUDA_PATH', 'CPATH'):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(torch.utils.cpp_extension, 'CUDA_HOME', str(tmp_path))  # torch's guess: the wrapper's
    return dict(toolkit=toolkit, toolkit_include=toolkit_include, site_packages=site_packages, pip_include=pip_include)


def test_a_wrapper_script_leads_to_its_toolkit_and_the_pip_packages_fill_in_the_rest(machine):
    home, extra = custom_ops.find_cuda_toolkit(machine['site_packages'])
    assert home == str(machine['toolkit'].resolve())
    assert extra == [str(machine['pip_include'])]


def test_cuda_home_is_taken_as_set(machine, tmp_path, monkeypatch):
    full = tmp_path / 'full-toolkit'
    headers(full / 'include', TOOLKIT_HEADERS + LIBRARY_HEADERS)
    monkeypatch.setenv('CUDA_HOME', str(full))
    assert custom_ops.find_cuda_toolkit(machine['site_packages']) == (str(full), [])


def test_a_cuda_home_without_the_toolkits_headers_names_the_missing_one(machine, tmp_path, monkeypatch):
    monkeypatch.setenv('CUDA_HOME', str(tmp_path / 'not-a-toolkit'))
    with pytest.raises(RuntimeError) as error:  # the runtime's header is in the pip packages, host_defines.h is not
        custom_ops.find_cuda_toolkit(machine['site_packages'])
    message = str(error.value)
    assert message.startswith('cannot build the custom CUDA ops: crt/host_defines.h is in none of ')
    assert str(machine['pip_include']) in message and f'the toolkit is {tmp_path / "not-a-toolkit"}, from CUDA_HOME' \
        in message and message.endswith('set CUDA_HOME to the CUDA toolkit that has it, or add the folder that holds '
                                        'it to CPATH')


def test_a_header_on_cpath_counts_and_one_found_nowhere_is_named(machine, tmp_path, monkeypatch):
    (machine['pip_include'] / 'cusparse.h').unlink()
    with pytest.raises(RuntimeError, match=r'^cannot build the custom CUDA ops: cusparse\.h is in none of '):
        custom_ops.find_cuda_toolkit(machine['site_packages'])
    monkeypatch.setenv('CPATH', str(headers(tmp_path / 'own', ['cusparse.h'])))
    assert custom_ops.find_cuda_toolkit(machine['site_packages'])[1] == [str(machine['pip_include'])]


def test_no_nvcc_and_no_cuda_home_is_said_so(machine, monkeypatch):
    monkeypatch.setenv('PATH', os.defpath)
    monkeypatch.setattr(torch.utils.cpp_extension, 'CUDA_HOME', None)
    with pytest.raises(RuntimeError, match='^no CUDA toolkit: nvcc is not on the PATH and CUDA_HOME is not set'):
        custom_ops.find_cuda_toolkit(machine['site_packages'])


def test_a_build_stopped_by_a_missing_header_is_recorded_in_one_line(machine, monkeypatch):
    """get_plugin looks for the headers before compiling anything, and keeps the reason that train.py's start line
    and training_options.json report (patch 0026)."""
    (machine['pip_include'] / 'cusparse.h').unlink()
    monkeypatch.setattr(torch, '__file__', str(machine['site_packages'] / 'torch' / '__init__.py'))
    with pytest.raises(RuntimeError, match='cusparse.h is in none of'):
        custom_ops.get_plugin('made_up_plugin', sources=['made_up.cpp', 'made_up.cu'])
    assert custom_ops.build_failures['made_up_plugin'].startswith('cannot build the custom CUDA ops: cusparse.h is')


def test_a_compiler_failure_is_summed_up_by_its_first_error():
    output = ("Error building extension 'bias_act_plugin': [1/3] nvcc -DTORCH_EXTENSION_NAME=bias_act_plugin ...\n"
              'FAILED: bias_act.cuda.o\n'
              '/ops/bias_act.cu:9:10: fatal error: cusparse.h: No such file or directory\n'
              '/ops/bias_act.cu:12:1: error: later\n')
    assert custom_ops._first_error(RuntimeError(output)) == \
        '/ops/bias_act.cu:9:10: fatal error: cusparse.h: No such file or directory'

"""Build upstream's custom CUDA ops (bias_act, upfirdn2d) with the installed PyTorch and nvcc and, on a machine with
a GPU, check that training uses them and that they agree with upstream's reference implementation.

    python scripts/check_cuda_ops.py            # exit 0 when every check that this machine allows passed

Needs a CUDA build of PyTorch, nvcc and ninja. The toolkit is found as training finds it (patch 0006): CUDA_HOME,
else the toolkit of the nvcc on the PATH (a wrapper script is followed), with headers a minimal toolkit lacks taken
from PyTorch's nvidia-* pip packages. Without a GPU it stops after the build (the kernels cannot run).
"""

import argparse
import os
import pathlib
import sys

import torch

from torch_utils import custom_ops
from torch_utils.ops import bias_act, upfirdn2d

ROOT = pathlib.Path(__file__).resolve().parents[1]

OPS_DIR = ROOT / 'stylegan2_ada' / 'torch_utils' / 'ops'
PLUGINS = {
    'bias_act_plugin': ['bias_act.cpp', 'bias_act.cu'],
    'upfirdn2d_plugin': ['upfirdn2d.cpp', 'upfirdn2d.cu'],
}


def build_all():
    """Compile and import each plugin exactly as upstream's ops do; raises on a build error."""
    custom_ops.verbosity = 'brief'
    for name, sources in PLUGINS.items():
        custom_ops.get_plugin(name, sources=[str(OPS_DIR / s) for s in sources], extra_cuda_cflags=['--use_fast_math'])


def check_on_gpu():
    """The training code's ops take the CUDA path and match the reference, values and gradients."""
    device = torch.device('cuda')
    assert bias_act._init() and upfirdn2d._init(), 'the ops fell back to the reference implementation'
    generator = torch.Generator(device=device).manual_seed(0)
    x = torch.randn([4, 16, 32, 32], device=device, generator=generator, requires_grad=True)
    b = torch.randn([16], device=device, generator=generator, requires_grad=True)
    for act in ['linear', 'lrelu', 'relu', 'tanh', 'sigmoid', 'swish']:
        fast = bias_act.bias_act(x, b, act=act, impl='cuda', clamp=256)
        ref = bias_act.bias_act(x, b, act=act, impl='ref', clamp=256)
        torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-4)
        grads_fast = torch.autograd.grad(fast.square().sum(), [x, b])
        grads_ref = torch.autograd.grad(ref.square().sum(), [x, b])
        for g_fast, g_ref in zip(grads_fast, grads_ref):
            torch.testing.assert_close(g_fast, g_ref, rtol=1e-3, atol=1e-3)
    f = upfirdn2d.setup_filter([1, 3, 3, 1], device=device)
    for up, down in [(1, 1), (2, 1), (1, 2)]:
        fast = upfirdn2d.upfirdn2d(x, f, up=up, down=down, padding=1, impl='cuda')
        ref = upfirdn2d.upfirdn2d(x, f, up=up, down=down, padding=1, impl='ref')
        torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-4)
        grad_fast, = torch.autograd.grad(fast.square().sum(), [x])
        grad_ref, = torch.autograd.grad(ref.square().sum(), [x])
        torch.testing.assert_close(grad_fast, grad_ref, rtol=1e-3, atol=1e-3)


def main():
    print(f'PyTorch {torch.__version__} (CUDA {torch.version.cuda}), GPU: {torch.cuda.is_available()}')
    if torch.version.cuda is None:
        sys.exit('this PyTorch is a CPU build: install a CUDA build to build the ops')
    if not torch.cuda.is_available():  # no GPU to take the architecture from: build for A100 and H100
        os.environ.setdefault('TORCH_CUDA_ARCH_LIST', '8.0;9.0')
    home, include = custom_ops.find_cuda_toolkit()  # raises naming a missing header and what to set
    print(f'CUDA toolkit: {home}' + (f'; headers it lacks from {", ".join(include)}' if include else ''))
    build_all()
    print(f'built and imported for compute capability {os.environ.get("TORCH_CUDA_ARCH_LIST", "of this GPU")}: '
          + ', '.join(PLUGINS))
    if not torch.cuda.is_available():
        print('no GPU here: the kernels were built but not run')
        return
    check_on_gpu()
    print('on the GPU: bias_act and upfirdn2d take the CUDA path and match the reference ops (values, gradients)')


if __name__ == '__main__':
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    main()

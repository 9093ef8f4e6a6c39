"""Input-gradient norms of D, per sample: shared math of the plugin loss (plugins/loss.py) for the methods whose D
term needs them. Nothing here imports upstream code."""

import torch


def per_sample_grad_norms(outputs, inputs, create_graph=True):
    """||d(sum of outputs)/d(inputs[i])||_2 for every sample i, shaped [N]: the input-gradient norms that a method's
    D term asks for (the norms in DigGAN's R).

    One backward pass of the summed logits gives every sample's gradient at once. That equals dD(x_i)/dx_i only
    when each logit depends on its own sample alone. Upstream's D has a minibatch-std layer that mixes samples, so
    there the gradient wrt x_i also holds the terms d D(x_j)/d x_i (j != i) that flow through the batch statistic.
    Choice: keep them, i.e. regularise the gradient of the summed logits as upstream's R1 penalty does (and as
    DigGAN's released code does, with grad_outputs of ones); exact per-sample gradients would need one D pass per
    sample or a D without minibatch-std.

    `inputs` must require grad and `outputs` ([N] or [N, 1]) must have been computed from it. With create_graph=True
    (the default, needed for training) the norms are differentiable wrt D's parameters. The graph of `outputs` is
    retained, so D's ordinary loss can still be backpropagated through the same logits afterwards.
    """
    if outputs.shape[0] != inputs.shape[0]:
        raise ValueError(f'outputs and inputs must hold the same number of samples, '
                         f'got {outputs.shape[0]} and {inputs.shape[0]}')
    gradients, = torch.autograd.grad(outputs.sum(), inputs, create_graph=create_graph, retain_graph=True)
    return gradients.flatten(1).norm(dim=1)

"""Pure-PyTorch math of InsGen's instance discrimination (Yang et al., "Data-Efficient Instance Generation from
Instance Discrimination", NeurIPS 2021; released `training/contrastive_head.py` and `training/training_loop.py`,
after MoCo). Nothing here imports upstream code."""

import importlib
import math

import torch

PROJECTION_DIM = 128  # the released heads' output width


def default_queue_size(training_set_size, xflip):
    """The released default: 5% of the dataset (int), doubled when it is mirrored (released `train.py`)."""
    return int(0.05 * training_set_size) * (2 if xflip else 1)


@torch.no_grad()
def momentum_update(ema_module, module, momentum):
    """ema <- ema * momentum + current * (1 - momentum), over parameters only (not buffers), as released."""
    for ema_param, param in zip(ema_module.parameters(), module.parameters()):
        ema_param.copy_(ema_param * momentum + param.detach() * (1 - momentum))


def lazy_regularization_optimizer(params, opt_kwargs, reg_interval):
    """The optimizer the training loop builds for a network with lazy regularization (lr * r, betas ** r with
    r = interval / (interval + 1)), which the released code builds for each head with G's or D's settings."""
    kwargs = dict(opt_kwargs)
    module_name, _, class_name = kwargs.pop('class_name', 'torch.optim.Adam').rpartition('.')
    ratio = 1 if reg_interval is None else reg_interval / (reg_interval + 1)
    kwargs['lr'] = kwargs['lr'] * ratio
    kwargs['betas'] = [float(beta) ** ratio for beta in kwargs['betas']]  # floats: Adam refuses an int beta
    return getattr(importlib.import_module(module_name), class_name)(params, **kwargs)


class ContrastiveHead(torch.nn.Module):
    """A MoCo head: a two-layer MLP projecting pooled D features onto the unit sphere (the query), its momentum copy
    (the key), and a queue of past keys as negatives. `forward` returns the InfoNCE loss of the queries against
    their keys and the queue (released `CLHead.forward`)."""

    def __init__(self, in_features, queue_size, temperature=0.2, momentum=0.999, generator=None):
        super().__init__()
        self.temperature = float(temperature)
        self.momentum = float(momentum)
        self.mlp = self._mlp(in_features, generator)
        self.momentum_mlp = self._mlp(in_features, generator)
        self.momentum_mlp.load_state_dict(self.mlp.state_dict())
        self.momentum_mlp.requires_grad_(False)
        queue = torch.randn([PROJECTION_DIM, queue_size], generator=generator)
        self.register_buffer('queue', torch.nn.functional.normalize(queue, dim=0))
        self.register_buffer('queue_ptr', torch.zeros([1], dtype=torch.long))

    @staticmethod
    def _mlp(in_features, generator):
        """nn.Linear's default initialisation, drawn from `generator` alone (skip_init: nothing from the global one)."""
        layers = [torch.nn.utils.skip_init(torch.nn.Linear, in_features, in_features), torch.nn.ReLU(),
                  torch.nn.utils.skip_init(torch.nn.Linear, in_features, PROJECTION_DIM)]
        for layer in (layers[0], layers[2]):
            bound = 1 / math.sqrt(layer.in_features)  # kaiming_uniform_(a=sqrt(5)) and the bias bound reduce to this
            with torch.no_grad():
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.uniform_(-bound, bound, generator=generator)
        return torch.nn.Sequential(*layers)

    @staticmethod
    def _pool(features):
        features = features.to(torch.float32)
        return features.mean([2, 3]) if features.ndim > 2 else features

    @torch.no_grad()
    def enqueue(self, keys):
        """Write keys [N, 128] into the ring buffer at its pointer, wrapping around (released `_dequeue_and_enqueue`:
        a batch longer than the queue fills it with its first entries)."""
        size = self.queue.shape[1]
        keys = keys.T.to(self.queue.dtype)
        count, ptr = keys.shape[1], int(self.queue_ptr)
        if count > size:
            self.queue.copy_(keys[:, :size])
        elif ptr + count > size:
            self.queue[:, ptr:] = keys[:, :size - ptr]
            self.queue[:, :count - (size - ptr)] = keys[:, size - ptr:]
            self.queue_ptr[0] = count - (size - ptr)
        else:
            self.queue[:, ptr:ptr + count] = keys
            self.queue_ptr[0] = ptr + count

    def forward(self, query_features, key_features, enqueue=None, gather=None):
        """InfoNCE loss (mean over the batch) of q = normalize(mlp(pool(query_features))) against
        k = normalize(momentum_mlp(pool(key_features))) and the queue, at the temperature. The momentum MLP moves
        first, on every call. `enqueue` None adds no keys; 'keys' adds k; 'queries' adds the momentum MLP's
        projection of the query features (released update_q, for fakes). `gather` maps the keys to those of every
        process (the queue then holds them all, in rank order)."""
        query = torch.nn.functional.normalize(self.mlp(self._pool(query_features)), dim=1)
        with torch.no_grad():
            momentum_update(self.momentum_mlp, self.mlp, self.momentum)
            key = torch.nn.functional.normalize(self.momentum_mlp(self._pool(key_features)), dim=1)
        positive = torch.einsum('nc,nc->n', query, key).unsqueeze(1)
        negative = torch.einsum('nc,ck->nk', query, self.queue.clone().detach())
        logits = torch.cat([positive, negative], dim=1) / self.temperature
        if enqueue is not None:
            with torch.no_grad():
                if enqueue == 'queries':
                    new_keys = self.momentum_mlp(self._pool(query_features.detach()))
                    new_keys = torch.nn.functional.normalize(new_keys, dim=1)
                else:
                    new_keys = key
                self.enqueue(gather(new_keys) if gather is not None else new_keys)
        labels = torch.zeros([logits.shape[0]], dtype=torch.long, device=logits.device)
        return torch.nn.functional.cross_entropy(logits, labels)

"""How alike the filters of each convolution layer of a snapshot's G and D are (Primitives-PS supplement Sec. 6,
Table 2: "the average cosine similarity between the filters in the same layer; the lower, the more diverse").

    python scripts/filter_similarity.py NETWORK.pkl [NETWORK.pkl ...] [--json PATH]

For each convolution layer, each of its O filters (weight[o], I x k x k values) is one vector, and the layer's
figure is the mean cosine similarity over the O (O - 1) / 2 pairs of distinct filters (signed: the supplement does
not say, and its figures are small and positive). The layers are numbered conv0, conv1, ... in the supplement's
order, from each network's input: G's synthesis layers from 4x4 up (b4.conv1, b8.conv0, b8.conv1, ...; not the
toRGB layers), D's from its input resolution down (conv0 and conv1 of each block, then b4.conv; not fromRGB, the
skip connections or the fully connected layers). Prints one table per network and the mean over the layers."""

import json
import pickle
from pathlib import Path

import click
import torch


def mean_cosine_similarity(weight):
    """Mean cosine similarity over the pairs of distinct filters of a convolution weight [O, I, k, k] (O >= 2)."""
    filters = torch.nn.functional.normalize(weight.detach().double().flatten(1), dim=1)
    cosines = filters @ filters.T
    count = filters.shape[0]
    return float((cosines.sum() - cosines.diagonal().sum()) / (count * (count - 1)))


def conv_layers(G, D):
    """{'G': [(name, weight)], 'D': [(name, weight)]} in the supplement's order (see the module docstring)."""
    generator = [(f'synthesis.{name}', module.weight) for name, module in G.synthesis.named_modules()
                 if name.split('.')[-1] in ('conv0', 'conv1')]
    discriminator = [(name, module.weight) for name, module in D.named_modules()
                     if name.split('.')[-1] in ('conv0', 'conv1') or name.endswith('b4.conv')]
    return {'G': generator, 'D': discriminator}


def similarities(snapshot):
    """{'G': {layer label: (module name, similarity)}, 'D': ...} of a snapshot's G_ema and D."""
    return {net: {f'conv{index}': (name, mean_cosine_similarity(weight)) for index, (name, weight) in enumerate(layers)}
            for net, layers in conv_layers(snapshot['G_ema'], snapshot['D']).items()}


@click.command()
@click.argument('networks', nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option('--json', 'json_path', type=click.Path(dir_okay=False), default=None, help='Also write the figures here.')
def main(networks, json_path):
    """The filter similarity of each layer of each NETWORK's G and D (see the module docstring)."""
    import legacy
    figures = {}
    for network in networks:
        if not Path(network).is_file():
            raise click.BadParameter(f'{network}: no such file', param_hint='NETWORKS')
        with open(network, 'rb') as file:
            try:
                snapshot = legacy.load_network_pkl(file)
            except (pickle.UnpicklingError, EOFError, KeyError) as error:
                raise click.BadParameter(f'{network}: not a network pickle ({error})', param_hint='NETWORKS') from None
        figures[network] = similarities(snapshot)
        click.echo(f'\n{network}\n| layer | D | G |\n|---|---|---|')
        labels = sorted(set(figures[network]['D']) | set(figures[network]['G']), key=lambda label: int(label[4:]))
        for label in labels:
            cells = [f'{figures[network][net][label][1]:.5f}' if label in figures[network][net] else ''
                     for net in ('D', 'G')]
            click.echo(f'| {label} | {cells[0]} | {cells[1]} |')
        means = [sum(value for _, value in figures[network][net].values()) / len(figures[network][net])
                 for net in ('D', 'G')]
        click.echo(f'| Mean | {means[0]:.5f} | {means[1]:.5f} |')
    if json_path is not None:
        Path(json_path).write_text(json.dumps(figures, indent=1) + '\n')


if __name__ == '__main__':
    main()

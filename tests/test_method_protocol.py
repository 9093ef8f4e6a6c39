"""The method protocol (plugins.common.method): a method defined only here plugs into plugins.Loss with one registry
line and no edit to the loss, its term reaches D's gradient as an independent computation says, and methods that
set the same thing are refused together."""

import re

import pytest
import torch
from torch_utils import training_stats

from plugins.common.contexts import DReads
from plugins.common.method import Method
from tests.tiny import (Batches, assert_d_main_adds_logit_term, make_loss, one_thread,  # noqa: F401 (autouse fixture)
                        phase_gradients, tiny_networks)


class SquaredLogits(Method):
    """A toy method: weight * (mean D(x)^2 + mean D(G(z))^2) added to D's main loss, and a count of its calls."""

    name = 'toy'
    stats_prefix = 'Toy'

    def __init__(self, weight=0.1):
        self.check_options(weight=weight)
        self.weight = weight
        self.calls = 0

    @staticmethod
    def check_options(weight=0.1):
        if not weight >= 0:
            raise ValueError(f'weight must be >= 0, got {weight}')

    @property
    def active(self):
        return self.weight > 0

    def d_terms_in(self, phase):
        return DReads(logits=True) if phase in ('Dmain', 'Dboth') else None

    def d_terms(self, d):
        self.calls += 1
        penalty = d.real_logits.square().mean() + d.gen_logits.square().mean()
        training_stats.report('Toy/penalty', penalty)
        d.add(self.weight * penalty)

    def state_dict(self):
        return {'calls': self.calls}

    def load_state_dict(self, state):
        self.calls = state['calls']


@pytest.fixture
def toy_registered(monkeypatch):
    from plugins import methods
    monkeypatch.setitem(methods.METHODS, 'toy', f'{__name__}.SquaredLogits')  # the one registry line


def test_a_method_defined_outside_the_package_adds_its_term_to_d(toy_registered):
    with_toy = assert_d_main_adds_logit_term('plugins.Loss', {'toy': {'weight': 0.5}}, lambda real_logits, gen_logits:
                                             0.5 * (real_logits.square().mean() + gen_logits.square().mean()))
    assert with_toy.methods['toy'].calls == 1 and with_toy.state_dict()['methods']['toy'] == {'calls': 1}


def test_a_method_at_its_neutral_setting_is_the_loss_without_it(toy_registered):
    G, D = tiny_networks()
    batch = Batches(batch=4, batch_gpu=2).next()
    for phase in ('Gmain', 'Dmain', 'Dreg'):
        without = phase_gradients(make_loss(G, D, 'plugins.Loss', atopk={}), G, D, batch, phase)
        neutral = phase_gradients(make_loss(G, D, 'plugins.Loss', atopk={}, toy={'weight': 0.0}), G, D, batch, phase)
        for a, b in zip(without, neutral):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_unknown_names_and_methods_that_set_the_same_thing_are_refused(toy_registered, monkeypatch):
    from plugins import Loss, methods
    registered = ', '.join(methods.METHODS)
    assert registered.endswith(', toy')
    with pytest.raises(ValueError, match=re.escape(f"'tooy' is neither a method ({registered}) nor an option")):
        Loss.check_options(tooy={})
    with pytest.raises(ValueError, match='weight must be >= 0, got -1'):
        Loss.check_options(toy={'weight': -1})

    class OtherSelector(Method):
        name = 'selector'
        sets = ('g_main_loss',)

        def g_main(self, g):
            g.replace_loss(g.gen_logits.mean())

    monkeypatch.setattr(f'{__name__}.OtherSelector', OtherSelector, raising=False)
    monkeypatch.setitem(methods.METHODS, 'selector', f'{__name__}.OtherSelector')
    with pytest.raises(ValueError, match="atopk and selector cannot be combined: each sets G's main loss"):
        Loss.check_options(atopk={}, selector={})

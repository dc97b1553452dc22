import torch

from slmkit.compress.obs import obs_sweep


def correlated_inputs(n=2048, d=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g) / d**0.5 + torch.eye(d)
    return torch.randn(n, d, generator=g) @ mix


def test_without_pruning_or_quantizing_the_weight_is_unchanged():
    x = correlated_inputs()
    w = torch.randn(16, 64)
    new, mask = obs_sweep(w, x.T @ x / len(x), blocksize=16)
    torch.testing.assert_close(new, w, rtol=1e-5, atol=1e-5)
    assert not mask.any()


def test_obs_compensation_beats_plain_masking_with_the_same_mask():
    x = correlated_inputs()
    w = torch.randn(32, 64)
    new, mask = obs_sweep(w, x.T @ x / len(x), sparsity=0.5, blocksize=16)
    assert mask.sum().item() == w.numel() // 2
    assert torch.all(new[mask] == 0)
    plain = w.masked_fill(mask, 0)
    assert (x @ (w - new).T).norm() < 0.9 * (x @ (w - plain).T).norm()


def test_pruned_of_m_pattern_holds_in_every_group():
    x = correlated_inputs()
    new, mask = obs_sweep(torch.randn(8, 64), x.T @ x / len(x), pruned_of_m=(1, 4), blocksize=32)
    assert torch.all(mask.view(8, 16, 4).sum(-1) == 1)  # one pruned, three kept in every group of four
    assert torch.all((new.view(8, 16, 4) != 0).sum(-1) <= 3)


def test_stacked_sweep_with_segments_equals_separate_sweeps():
    x = correlated_inputs()
    h = x.T @ x / len(x)
    q, k = torch.randn(32, 64), torch.randn(8, 64) * 3  # different scales: a shared budget would favour one
    apart = [obs_sweep(w, h, sparsity=0.5, blocksize=16) for w in (q, k)]
    stacked, mask = obs_sweep(torch.cat([q, k]), h, sparsity=0.5, blocksize=16, segments=[32, 8])
    torch.testing.assert_close(stacked, torch.cat([a[0] for a in apart]), rtol=1e-4, atol=1e-5)
    assert torch.equal(mask, torch.cat([a[1] for a in apart]))
    assert mask[32:].sum().item() == k.numel() // 2

"""harness.stats: the report's statistics, checked against rliable and against known answers."""

from __future__ import annotations

import numpy as np
import pytest

from harness import stats


def test_rliable_is_importable_and_agrees():
    from rliable import library as rly  # noqa: F401 - rliable (and arch) import under the pinned pandas
    from rliable import metrics

    rng = np.random.default_rng(0)
    scores = rng.normal(1.0, 0.5, size=(10, 5))
    assert stats.aggregate_iqm(scores) == pytest.approx(metrics.aggregate_iqm(scores))
    assert stats.aggregate_mean(scores) == pytest.approx(metrics.aggregate_mean(scores))
    assert stats.aggregate_median(scores) == pytest.approx(metrics.aggregate_median(scores))
    assert stats.aggregate_optimality_gap(scores) == pytest.approx(metrics.aggregate_optimality_gap(scores))
    other = rng.normal(1.2, 0.5, size=(7, 5))
    assert stats.probability_of_improvement(other, scores) == pytest.approx(
        metrics.probability_of_improvement(other, scores))
    taus = np.linspace(0, 2, 11)
    assert stats.performance_profile(scores, taus) == pytest.approx(rly.score_distributions(scores, taus))


def test_aggregates_are_vectorised_over_leading_axes():
    rng = np.random.default_rng(1)
    batch = rng.normal(size=(4, 6, 3))
    out = stats.aggregate_metrics(batch)
    assert out.shape == (4, 4)
    for i in range(4):
        assert out[i] == pytest.approx(stats.aggregate_metrics(batch[i]))


def test_ragged_tasks_ignore_padding():
    padded = stats.pad_ragged([[1.0, 2.0, 3.0], [10.0]])
    assert padded.shape == (3, 2) and np.isnan(padded[1:, 1]).all()
    assert stats.aggregate_mean(padded) == pytest.approx((2.0 + 10.0) / 2)
    assert stats.aggregate_median(padded) == pytest.approx(6.0)
    assert stats.aggregate_iqm(padded) == pytest.approx(2.5)  # trim 1 of 4 pooled values on each side
    assert stats.aggregate_optimality_gap(padded, gamma=2.0) == pytest.approx(2.0 - (1 + 2 + 2 + 2) / 4)


def test_stratified_bootstrap_keeps_strata_and_ci_contains_truth():
    rng = np.random.default_rng(2)
    true_mean = 0.5
    scores = true_mean + rng.normal(0.0, 0.2, size=(20, 5))
    boot = stats.stratified_bootstrap(scores, stats.aggregate_mean, reps=1000, rng=np.random.default_rng(3))
    lo, hi = stats.percentile_interval(boot)
    assert lo < true_mean < hi
    assert hi - lo < 0.1
    boot_iqm = stats.stratified_bootstrap(scores, stats.aggregate_iqm, reps=1000, rng=np.random.default_rng(4))
    lo, hi = stats.percentile_interval(boot_iqm)
    assert lo < true_mean < hi  # symmetric noise: the IQM estimates the same centre

    idx = stats.stratified_indices(["a", "a", "b", "b", "b"], reps=50, rng=np.random.default_rng(5))
    assert idx.shape == (50, 5)
    assert set(np.unique(idx[:, :2])) <= {0, 1} and set(np.unique(idx[:, 2:])) <= {2, 3, 4}
    t = stats.stratified_task_indices([2, 1], n_max=2, reps=30, rng=np.random.default_rng(6))
    assert set(np.unique(t[:, :, 0])) <= {0, 1} and (t[:, 0, 1] == 0).all() and (t[:, 1, 1] == 1).all()


def test_interpolation_of_unequal_curves():
    grid = np.linspace(0, 10, 11)
    short = (np.array([0.0, 5.0]), np.array([0.0, 5.0]))
    long = (np.array([1.0, 10.0]), np.array([10.0, 100.0]))
    m = stats.interpolate_to_grid([short, long], grid)
    assert m.shape == (2, 11)
    np.testing.assert_allclose(m[0, :6], np.arange(6.0))
    assert np.isnan(m[0, 6:]).all()  # no extrapolation past the end of the shorter curve
    assert np.isnan(m[1, 0]) and m[1, 1] == 10.0 and m[1, 10] == 100.0
    mean, count = stats.mean_with_coverage(m)
    assert list(count) == [1, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1]
    np.testing.assert_allclose(mean[1:6], (np.arange(1, 6) + 10.0 * np.arange(1, 6)) / 2)
    assert np.isnan(mean[0]) and np.isnan(mean[6:]).all()  # one of two runs is not more than half


def test_finished_runs_keep_their_final_score_on_the_wall_clock():
    """Six finished runs, three fast ones scoring 3 and three slow ones scoring 1 (flat): without
    holding, the mean drops from 2 to 1 where the fast ones end, with no run getting worse."""
    grid = np.linspace(0, 10, 11)
    fast = [(np.array([0.0, 5.0]), np.array([3.0, 3.0]))] * 3
    slow = [(np.array([0.0, 10.0]), np.array([1.0, 1.0]))] * 3
    m = stats.interpolate_to_grid(fast + slow, grid)
    raw, _ = stats.mean_with_coverage(m)
    assert raw[5] == 2.0 and np.isnan(raw[6:]).all()  # the old picture: ends (or, with more slow runs, drops)
    held = stats.hold_last(m)
    mean, count = stats.mean_with_coverage(held)
    np.testing.assert_allclose(mean, 2.0)
    assert (count == 6).all()
    # only trailing gaps are filled: a curve that starts late stays empty before its start
    late = stats.hold_last(stats.interpolate_to_grid([(np.array([3.0, 4.0]), np.array([7.0, 8.0]))], grid))
    assert np.isnan(late[0, :3]).all() and late[0, 3] == 7.0 and (late[0, 4:] == 8.0).all()
    assert np.isnan(m[0, 6:]).all()  # hold_last copies; the input is untouched


def test_first_crossing_interpolates_and_reports_never():
    grid = np.array([0.0, 10.0, 20.0, 30.0])
    values = np.array([[0.0, 5.0, 15.0, 20.0], [0.0, 1.0, 2.0, 3.0], [12.0, 0, 0, 0]])
    t = stats.first_crossing(grid, values, 10.0)
    assert t[0] == pytest.approx(15.0)  # halfway between 5 and 15
    assert np.isinf(t[1])
    assert t[2] == 0.0


def test_centred_window_mean_does_not_lag():
    x = np.arange(100.0)
    y = 3.0 * x
    s = stats.centred_window_mean(x, y, width=10.0)
    np.testing.assert_allclose(s[5:95], y[5:95])


def test_percentile_interval_with_infinite_samples():
    lo, hi = stats.percentile_interval(np.array([1.0, 2.0, 3.0, np.inf] * 10))
    assert lo == 1.0 and np.isinf(hi)


def test_normalise():
    assert stats.normalise(15.5, -18.0, 15.5) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        stats.normalise(1.0, 2.0, 2.0)


def test_resampled_means_equal_explicit_resampling():
    rng = np.random.default_rng(7)
    values = rng.normal(size=(6, 9))
    values[2, 5:] = np.nan  # a shorter run
    idx = stats.stratified_indices([0, 0, 0, 1, 1, 1], reps=40, rng=rng)
    fast = stats.resampled_means(values, stats.resample_weights(idx, 6))
    slow, _ = stats.mean_with_coverage(values[idx], axis=1)
    np.testing.assert_allclose(fast, slow, equal_nan=True)


def test_percentile_interval_matches_numpy():
    rng = np.random.default_rng(8)
    samples = rng.normal(size=(999, 4))
    samples[:100, 1] = np.nan
    lo, hi = stats.percentile_interval(samples)
    np.testing.assert_allclose(lo, np.nanquantile(samples, 0.025, axis=0, method="inverted_cdf"))
    np.testing.assert_allclose(hi, np.nanquantile(samples, 0.975, axis=0, method="inverted_cdf"))
    lo, hi = stats.percentile_interval(np.full((5, 2), np.nan))
    assert np.isnan(lo).all() and np.isnan(hi).all()


def _rliable_interval(score_dict_value, func, reps):
    from rliable import library as rly

    _, ci = rly.get_interval_estimates({"x": score_dict_value}, func, reps=reps,
                                       random_state=np.random.RandomState(0))
    return ci["x"]


def test_bootstrap_intervals_agree_with_rliable():
    """The report's vectorised stratified bootstrap gives rliable's percentile intervals (up to Monte
    Carlo error): aggregates, probability of improvement and performance profiles."""
    import warnings

    from rliable import library as rly
    from rliable import metrics

    from harness.report.aggregates import point_aggregates, point_improvement, point_profile

    # Both are Monte Carlo estimates of the same percentiles: with 4,000 resamples a 2.5% percentile
    # has a standard error of about 0.055 bootstrap SDs, so two estimates differ by about 0.08 SD;
    # the bounds below allow ~4 of those (a wrong resampling scheme moves them further).
    reps = 4000
    rng = np.random.default_rng(7)
    scores = rng.normal(1.0, 0.5, size=(12, 4))
    four = lambda x: np.array([metrics.aggregate_iqm(x), metrics.aggregate_median(x), metrics.aggregate_mean(x),
                               metrics.aggregate_optimality_gap(x)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # arch: random_state deprecation inside rliable
        ref = _rliable_interval(scores, four, reps)
    boot = stats.stratified_bootstrap(scores, stats.aggregate_metrics, reps, np.random.default_rng(0))
    lo, hi = stats.percentile_interval(boot)
    spread = boot.std(axis=0)
    assert np.all(np.abs(lo - ref[0]) < 0.3 * spread) and np.all(np.abs(hi - ref[1]) < 0.3 * spread)
    assert point_aggregates(scores) == pytest.approx(four(scores))

    x, y = rng.normal(1.2, 0.5, size=(6, 3)), rng.normal(1.0, 0.5, size=(5, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ref = _rliable_interval([x, y], metrics.probability_of_improvement, reps)
    cx, cy = np.isfinite(x).sum(axis=0), np.isfinite(y).sum(axis=0)
    g = np.random.default_rng(1)
    bx = np.take_along_axis(x[None], stats.stratified_task_indices(cx, x.shape[0], reps, g), axis=1)
    by = np.take_along_axis(y[None], stats.stratified_task_indices(cy, y.shape[0], reps, g), axis=1)
    boot = stats.probability_of_improvement(bx, by)
    lo, hi = stats.percentile_interval(boot)
    assert abs(lo - ref[0][0]) < 0.35 * boot.std() and abs(hi - ref[1][0]) < 0.35 * boot.std()  # steps of 1/90
    assert point_improvement(x, y) == pytest.approx(metrics.probability_of_improvement(x, y))

    taus = np.linspace(0, 2, 9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ref = _rliable_interval(scores, lambda s: rly.score_distributions(s, taus), 2000)
    boot = stats.stratified_bootstrap(scores, lambda s: stats.performance_profile(s, taus), 2000, np.random.default_rng(2))
    lo, hi = stats.percentile_interval(boot)
    assert np.all(np.abs(lo - ref[0]) <= 0.045) and np.all(np.abs(hi - ref[1]) <= 0.045)  # 2 steps of 1/48
    assert point_profile(scores, taus) == pytest.approx(rly.score_distributions(scores, taus))
    # uneven run counts: the NaN-aware functions, which rliable cannot take
    ragged = stats.pad_ragged([[1.0, 2.0, 3.0], [10.0]])
    assert point_aggregates(ragged) == pytest.approx(stats.aggregate_metrics(ragged))

"""K-SVD dictionary learning (Aharon, Elad & Bruckstein, 2006).

K-SVD looks for a dictionary D (unit-norm atoms d_k) and sparse codes
gamma_i minimising ``sum_i ||x_i - D gamma_i||^2`` with at most ``n_nonzero``
atoms per signal (or a residual bound ``tol`` per signal).  Each iteration:

1. Sparse coding: OMP codes every signal with D fixed.
2. Dictionary update, one atom at a time, supports fixed.  For atom k, let
   w_k be the signals using it and E_k = X_w - sum_{j != k} d_j gamma^j_w the
   residual without k's contribution.  The best rank-1 term d_k gamma^k_w is
   the leading singular pair of E_k:

       E_k ~= s u v^T,   d_k <- u,   gamma^k_w <- s v^T.

   We get u by power iteration on E_k E_k^T started from the current atom
   (a handful of steps, each raising the energy ||u^T E_k||^2 the atom
   captures) and gamma^k_w = u^T E_k.  The loop over atoms runs in Numba: it
   is sequential by nature (each update changes the residual the next sees).
3. Housekeeping: an atom nobody uses, or one nearly parallel to an earlier
   atom (|d_j^T d_k| > replace_threshold), is replaced by the worst
   represented signal (largest residual energy), normalised.

DC removal (the paper's preprocessing): the first atom is the constant
``1/sqrt(n)`` and stays fixed; every training signal has its mean removed and
the other atoms are kept mean-free, so they describe only the
high-frequency (AC) content.  A full signal x is then ``mean(x) * sqrt(n)``
times the DC atom plus the code of ``x - mean(x)`` over the AC atoms.

The representation error cannot grow from one iteration to the next in
sparsity mode: a signal keeps its previous code when OMP finds a worse one,
each rank-1 update is optimal for its atom, and replacing an unused atom
changes no code.  Only retiring a near-duplicate atom (its codes are zeroed)
can raise it.
"""
import numpy as np
from numba import njit

from .omp import as_float_matrix, batch_omp, check_int, check_stopping, reconstruct

_POWER_STEPS = 100    # at most this many power iterations per atom update
_POWER_TOL = 1e-12    # stop once 1 - cos(angle between successive iterates) is below this


def overcomplete_dct(patch, n_atoms):
    """2-D overcomplete DCT dictionary (patch*patch, n_atoms), DC atom first.

    1-D atoms ``cos(pi * f * t / m)`` for t = 0..patch-1 and f = 0..m-1 with
    m = ceil(sqrt(n_atoms)), non-DC ones made mean-free and all unit-norm;
    2-D atoms are their outer products, lowest frequencies first.
    """
    m = int(np.ceil(np.sqrt(n_atoms)))
    t = np.arange(patch)[:, None]
    one_d = np.cos(np.pi * t * np.arange(m)[None, :] / m)
    one_d[:, 1:] -= one_d[:, 1:].mean(axis=0)
    one_d /= np.linalg.norm(one_d, axis=0)
    fy, fx = np.divmod(np.arange(m * m), m)
    order = np.lexsort((fx + fy, np.maximum(fx, fy)))[:n_atoms]
    return np.kron(one_d, one_d)[:, order]


def _initial_atoms(signals, n_atoms, init, remove_dc, rng):
    """Atoms as rows (n_atoms, n_features): given, or random distinct signals."""
    n_features = signals.shape[1]
    if init is not None:
        init = as_float_matrix(init, "init")
        if init.shape != (n_features, n_atoms):
            raise ValueError(f"init must have shape {(n_features, n_atoms)}, got {init.shape}")
        atoms = init.T.copy()
    else:
        norms = np.linalg.norm(signals, axis=1)
        nonzero = np.flatnonzero(norms > 1e-12 * max(norms.max(), 1e-300))
        pick = rng.choice(nonzero, min(n_atoms, nonzero.size), replace=False)
        atoms = np.vstack([signals[pick], rng.standard_normal((n_atoms - pick.size, n_features))])
    if remove_dc:
        atoms -= atoms.mean(axis=1, keepdims=True)
        atoms[0] = 1.0 / np.sqrt(n_features)
    norms = np.linalg.norm(atoms, axis=1)
    if np.any(norms < 1e-12):
        bad = int(np.argmax(norms < 1e-12))
        raise ValueError(f"init column {bad} is zero (or constant, which DC removal zeroes)")
    return atoms / norms[:, None]


def _sparse_code(atoms, signals, max_atoms, tol, previous):
    """OMP codes (support, coefs, counts); keeps a previous code where OMP does worse."""
    support, coefs, counts, errors = batch_omp(
        atoms @ atoms.T, signals @ atoms.T, np.einsum("ij,ij->i", signals, signals), max_atoms, tol)
    if previous is not None:
        old_support, old_coefs, old_counts, old_residual = previous
        keep = np.einsum("ij,ij->i", old_residual, old_residual) < errors
        if tol >= 0:
            keep &= errors > tol
        support[keep], coefs[keep], counts[keep] = old_support[keep], old_coefs[keep], old_counts[keep]
    return support, coefs, counts


def _users(support, counts, n_atoms):
    """Signals and slots using each atom: atom k's are entries bounds[k]:bounds[k+1]."""
    signal, slot = np.nonzero(np.arange(support.shape[1]) < counts[:, None])
    atom = support[signal, slot]
    order = np.argsort(atom, kind="stable")
    return signal[order], slot[order], np.searchsorted(atom[order], np.arange(n_atoms + 1))


@njit(cache=True)
def _leading_direction(err, start, max_iter, tol):
    """Top right singular vector of err (rows are signals) by power iteration from ``start``.

    u <- E^T E u / ||E^T E u||.  Started from the current atom it converges in
    a few steps, and for a positive semi-definite E^T E every step raises the
    captured energy ||E u||^2, so an early stop never undoes the update.
    """
    m, n = err.shape
    u = start.copy()
    proj = np.empty(m)
    for _ in range(max_iter):
        for i in range(m):
            proj[i] = np.dot(err[i], u)
        new = np.zeros(n)
        for i in range(m):
            new += proj[i] * err[i]
        size = np.sqrt(np.dot(new, new))
        if size == 0.0:
            return u
        new /= size
        done = 1.0 - np.dot(new, u) < tol
        u = new
        if done:
            break
    return u


@njit(cache=True)
def _update_atoms_kernel(atoms, residual, coefs, signal, slot, bounds, max_iter, tol):
    """Rank-1 update of every used atom in turn, in place; return a mask of unused atoms."""
    n_atoms, n_features = atoms.shape
    unused = np.zeros(n_atoms, np.bool_)
    for k in range(n_atoms):
        lo, hi = bounds[k], bounds[k + 1]
        if lo == hi:
            unused[k] = True
            continue
        err = np.empty((hi - lo, n_features))             # E_k^T: residual without atom k
        largest, largest_norm = 0, -1.0
        for i in range(lo, hi):
            err[i - lo] = residual[signal[i]] + coefs[signal[i], slot[i]] * atoms[k]
            norm = np.dot(err[i - lo], err[i - lo])
            if norm > largest_norm:
                largest, largest_norm = i - lo, norm
        if largest_norm == 0.0:
            continue
        start = atoms[k]
        if np.abs(err @ start).max() == 0.0:                # current atom blind to E: start elsewhere
            start = err[largest] / np.sqrt(largest_norm)
        atom = _leading_direction(err, start, max_iter, tol)
        atoms[k] = atom
        for i in range(lo, hi):
            gain = np.dot(err[i - lo], atom)
            coefs[signal[i], slot[i]] = gain
            residual[signal[i]] = err[i - lo] - gain * atom
    return unused


def _update_atoms(atoms, residual, support, coefs, counts):
    """Rank-1 SVD update of every atom (in place); return the indices of unused atoms."""
    unused = _update_atoms_kernel(atoms, residual, coefs, *_users(support, counts, atoms.shape[0]),
                                  _POWER_STEPS, _POWER_TOL)
    return np.flatnonzero(unused)


def _replace_atoms(atoms, signals, residual, support, coefs, counts, unused, threshold):
    """Swap unused and near-duplicate atoms for the worst represented signals (in place)."""
    overlap = np.abs(np.tril(atoms @ atoms.T, -1)).max(axis=1, initial=0.0)
    duplicates = np.flatnonzero(overlap > threshold)
    retire = np.union1d(unused, duplicates)
    if retire.size == 0:
        return
    used = np.arange(support.shape[1]) < counts[:, None]
    for k in duplicates:
        signal, slot = np.nonzero(used & (support == k))
        residual[signal] += np.outer(coefs[signal, slot], atoms[k])
        coefs[signal, slot] = 0.0
    norms = np.linalg.norm(signals, axis=1)
    worst = np.argsort(-np.einsum("ij,ij->i", residual, residual), kind="stable")
    worst = worst[norms[worst] > 0][:retire.size]
    for k, i in zip(retire, worst):
        atoms[k] = signals[i] / norms[i]


def ksvd_rows(signals, n_atoms, n_nonzero=None, n_iter=10, init=None, seed=0, tol=None,
              remove_dc=True, replace_threshold=0.99):
    """``ksvd`` on signals stored one per row (n_signals, n_features); atoms returned as rows."""
    n_features = signals.shape[1]
    signals = signals - signals.mean(axis=1, keepdims=True) if remove_dc else signals.copy()
    rng = np.random.default_rng(seed)
    atoms = _initial_atoms(signals, n_atoms, init, remove_dc, rng)
    active = atoms[1:] if remove_dc else atoms       # the atoms that code (a view)
    max_atoms, tol = check_stopping(n_nonzero, tol, n_features, active.shape[0])
    history, previous = [], None
    for _ in range(n_iter):
        support, coefs, counts = _sparse_code(active, signals, max_atoms, tol, previous)
        residual = signals - reconstruct(active, support, coefs, counts)
        unused = _update_atoms(active, residual, support, coefs, counts)
        _replace_atoms(active, signals, residual, support, coefs, counts, unused, replace_threshold)
        history.append(np.sqrt(np.mean(residual ** 2)))
        previous = support, coefs, counts, residual
    return atoms, np.array(history)


def ksvd(X, n_atoms, n_nonzero=None, n_iter=10, init=None, seed=0, tol=None,
         remove_dc=True, replace_threshold=0.99):
    """Learn a dictionary for the columns of ``X`` by K-SVD.

    Parameters
    ----------
    X : (n_features, n_signals) training signals.
    n_atoms : dictionary size (including the DC atom when ``remove_dc``).
    n_nonzero, tol : OMP stopping rule for the coding step (atoms per signal
        and/or residual squared error per signal; at least one).
    n_iter : number of coding + update iterations.
    init : optional (n_features, n_atoms) starting dictionary; by default
        ``n_atoms`` distinct signals drawn at random (seeded by ``seed``).
    remove_dc : first atom fixed to the constant, signals' means removed.
    replace_threshold : |cosine| above which an atom counts as a duplicate.

    Returns
    -------
    D : (n_features, n_atoms) unit-norm atoms (D[:, 0] is DC when remove_dc).
    history : (n_iter,) root-mean-square representation error of the
        (DC-free) signals after each iteration.
    """
    X = as_float_matrix(X, "X")
    n_atoms = check_int("n_atoms", n_atoms, 2 if remove_dc else 1)
    n_iter = check_int("n_iter", n_iter, 0)
    if not 0 < replace_threshold <= 1:
        raise ValueError(f"replace_threshold must lie in (0, 1], got {replace_threshold!r}")
    atoms, history = ksvd_rows(np.ascontiguousarray(X.T), n_atoms, n_nonzero, n_iter,
                               init, seed, tol, remove_dc, replace_threshold)
    return np.ascontiguousarray(atoms.T), history

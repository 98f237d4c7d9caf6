"""Batch orthogonal matching pursuit.

OMP approximates a signal ``x`` by a few columns ("atoms") of a dictionary
``D`` with unit-norm columns.  It grows a support ``I`` one atom at a time:

    k     = argmax_j |d_j^T r|                      (the atom most like the residual)
    I     = I + {k}
    g_I   = argmin_g ||x - D_I g||^2 = (D_I^T D_I)^{-1} D_I^T x
    r     = x - D_I g_I

Batch-OMP (Rubinstein, Zibulevsky & Elad, 2008) never forms ``r``.  With the
Gram matrix ``G = D^T D`` and the correlations ``a0 = D^T x`` computed once
for all signals (two BLAS calls), the correlations with the residual are

    D^T r = a0 - G[:, I] g_I,

the normal equations ``G_II g_I = a0_I`` are solved through a Cholesky factor
``G_II = L L^T`` that gains one row per step,

    L_new = [[L, 0], [w^T, sqrt(1 - w^T w)]],   L w = G[I, k],

and the residual energy follows without the residual itself:

    ||r||^2 = ||x||^2 - a0_I^T g_I.

Coding stops after ``n_nonzero`` atoms or once ``||r||^2 <= tol``, whichever
comes first.  Signals are coded in parallel (``numba.prange``) in blocks so
that each thread reuses one workspace.  Small batches run on one thread: a
parallel region costs a thread wake-up, which dominates when there is little
work (and can take milliseconds when the cores are shared).
"""
import operator

import numpy as np
from numba import njit, prange

_BLOCK = 256          # signals per parallel work item
_MIN_PARALLEL = 4096  # fewer signals than this are coded on one thread
_DEPENDENT = 1e-10    # a new atom whose Cholesky pivot falls below this is (numerically) in span(D_I)


@njit(cache=True)
def _code_one(gram, a0, norm2, max_atoms, tol, support, coefs, chol, alpha, gamma, work):
    """Code one signal; write its support and coefficients; return (n_used, residual energy)."""
    n_atoms = a0.shape[0]
    err = norm2
    if tol >= 0.0 and err <= tol:
        return 0, err
    floor = 1e-12 * np.sqrt(norm2)
    for j in range(n_atoms):
        alpha[j] = a0[j]
    k = 0
    while k < max_atoms:
        best, best_val = -1, floor
        for j in range(n_atoms):
            v = abs(alpha[j])
            if v > best_val:
                best, best_val = j, v
        if best < 0:                       # residual orthogonal to every atom
            break
        # Grow the Cholesky factor: solve L w = G[I, best], pivot = sqrt(G_bb - w.w).
        pivot = gram[best, best]
        for r in range(k):
            s = gram[support[r], best]
            for c in range(r):
                s -= chol[r, c] * work[c]
            work[r] = s / chol[r, r]
            pivot -= work[r] * work[r]
        if pivot <= _DEPENDENT:
            break
        for c in range(k):
            chol[k, c] = work[c]
        chol[k, k] = np.sqrt(pivot)
        support[k] = best
        k += 1
        # Solve L L^T g = a0_I by forward then backward substitution.
        for r in range(k):
            s = a0[support[r]]
            for c in range(r):
                s -= chol[r, c] * work[c]
            work[r] = s / chol[r, r]
        for r in range(k - 1, -1, -1):
            s = work[r]
            for c in range(r + 1, k):
                s -= chol[c, r] * gamma[c]
            gamma[r] = s / chol[r, r]
        # Correlations with the new residual and its energy.
        for j in range(n_atoms):
            alpha[j] = a0[j]
        err = norm2
        for r in range(k):
            g = gamma[r]
            row = gram[support[r]]
            for j in range(n_atoms):
                alpha[j] -= row[j] * g
            err -= a0[support[r]] * g
        err = max(err, 0.0)
        if tol >= 0.0 and err <= tol:
            break
    for r in range(k):
        coefs[r] = gamma[r]
    return k, err


@njit(cache=True)
def _code_range(gram, corr, norms2, tol, first, stop, support, coefs, counts, errors):
    """Code signals first..stop-1 into the output arrays, with one workspace."""
    n_atoms, max_atoms = gram.shape[0], support.shape[1]
    chol = np.zeros((max_atoms, max_atoms))
    alpha = np.empty(n_atoms)
    gamma = np.empty(max_atoms)
    work = np.empty(max_atoms)
    for s in range(first, stop):
        counts[s], errors[s] = _code_one(gram, corr[s], norms2[s], max_atoms, tol,
                                         support[s], coefs[s], chol, alpha, gamma, work)


@njit(cache=True)
def _code_serial(gram, corr, norms2, tol, support, coefs, counts, errors):
    _code_range(gram, corr, norms2, tol, 0, corr.shape[0], support, coefs, counts, errors)


@njit(parallel=True, cache=True)
def _code_parallel(gram, corr, norms2, tol, support, coefs, counts, errors):
    n_signals = corr.shape[0]
    for b in prange((n_signals + _BLOCK - 1) // _BLOCK):
        _code_range(gram, corr, norms2, tol, b * _BLOCK, min((b + 1) * _BLOCK, n_signals),
                    support, coefs, counts, errors)


def batch_omp(gram, corr, norms2, max_atoms, tol):
    """Sparse codes of many signals.

    gram (n_atoms, n_atoms) = D^T D; corr (n_signals, n_atoms) = X^T D, C-ordered;
    norms2 (n_signals,) = ||x||^2; tol < 0 disables the error stop.
    Returns support (n_signals, max_atoms) int64, coefs (same shape),
    counts (n_signals,) atoms used per signal, errors (n_signals,) ||r||^2.
    Entries past ``counts[s]`` in row ``s`` are zero.
    """
    n_signals = corr.shape[0]
    support = np.zeros((n_signals, max_atoms), np.int64)
    coefs = np.zeros((n_signals, max_atoms))
    counts = np.zeros(n_signals, np.int64)
    errors = np.zeros(n_signals)
    kernel = _code_parallel if n_signals >= _MIN_PARALLEL else _code_serial
    kernel(gram, corr, norms2, float(tol), support, coefs, counts, errors)
    return support, coefs, counts, errors


@njit(cache=True)
def _reconstruct_range(atoms, support, coefs, counts, first, stop, out):
    for s in range(first, stop):
        for t in range(counts[s]):
            out[s] += coefs[s, t] * atoms[support[s, t]]


@njit(parallel=True, cache=True)
def _reconstruct_parallel(atoms, support, coefs, counts, out):
    n_signals = counts.shape[0]
    for b in prange((n_signals + _BLOCK - 1) // _BLOCK):
        _reconstruct_range(atoms, support, coefs, counts, b * _BLOCK, min((b + 1) * _BLOCK, n_signals), out)


def reconstruct(atoms, support, coefs, counts):
    """Rows ``sum_t coefs[s, t] * atoms[support[s, t]]``; atoms is D^T (n_atoms, n_features)."""
    out = np.zeros((counts.shape[0], atoms.shape[1]))
    if counts.shape[0] >= _MIN_PARALLEL:
        _reconstruct_parallel(atoms, support, coefs, counts, out)
    else:
        _reconstruct_range(atoms, support, coefs, counts, 0, counts.shape[0], out)
    return out


def to_dense(support, coefs, counts, n_atoms):
    """Sparse rows -> dense coefficient matrix (n_atoms, n_signals)."""
    used = np.arange(support.shape[1]) < counts[:, None]
    signal, slot = np.nonzero(used)
    dense = np.zeros((n_atoms, counts.shape[0]))
    dense[support[signal, slot], signal] = coefs[signal, slot]
    return dense


def as_float_matrix(a, name):
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty (shape {a.shape})")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{name} must be real-valued, got dtype {a.dtype}")
    a = a.astype(np.float64, copy=False)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def check_int(name, value, low):
    """``value`` as a Python int, or a ValueError naming the argument."""
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}") from None
    if number < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return number


def check_stopping(n_nonzero, tol, n_features, n_atoms):
    """Validate the stopping rule; return (max_atoms, tol as float, -1 when unused)."""
    if n_nonzero is None and tol is None:
        raise ValueError("give n_nonzero (atoms per signal) or tol (residual squared error), or both")
    max_atoms = min(n_features, n_atoms)
    if n_nonzero is not None:
        n_nonzero = check_int("n_nonzero", n_nonzero, 1)
        if n_nonzero > max_atoms:
            raise ValueError(f"n_nonzero={n_nonzero} exceeds min(n_features, n_atoms)={max_atoms}")
        max_atoms = n_nonzero
    if tol is None:
        tol = -1.0
    elif not np.isscalar(tol) or not np.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    return max_atoms, float(tol)


def omp(D, X, n_nonzero=None, tol=None):
    """Orthogonal matching pursuit of every column of ``X`` over dictionary ``D``.

    Parameters
    ----------
    D : (n_features, n_atoms) array with unit-norm columns.
    X : (n_features, n_signals) array, or (n_features,) for one signal.
    n_nonzero : stop after this many atoms per signal.
    tol : stop once the residual squared error ``||x - D g||^2 <= tol``.
        With both given, coding stops at whichever is reached first.

    Returns
    -------
    (n_atoms, n_signals) coefficients ``G`` with ``X ~= D @ G``
    ((n_atoms,) for a 1-D ``X``).
    """
    D = as_float_matrix(D, "D")
    single = np.ndim(X) == 1
    X = as_float_matrix(np.reshape(X, (-1, 1)) if single else X, "X")
    n_features, n_atoms = D.shape
    if X.shape[0] != n_features:
        raise ValueError(f"X has {X.shape[0]} features (rows) but D has {n_features}")
    norms = np.linalg.norm(D, axis=0)
    if not np.allclose(norms, 1.0, rtol=0, atol=1e-6):
        worst = int(np.argmax(np.abs(norms - 1)))
        raise ValueError(f"columns of D must have unit norm; column {worst} has norm {norms[worst]:.6g}")
    max_atoms, tol = check_stopping(n_nonzero, tol, n_features, n_atoms)
    corr = np.ascontiguousarray(X.T @ D)
    support, coefs, counts, _ = batch_omp(D.T @ D, corr, np.einsum("ij,ij->j", X, X), max_atoms, tol)
    dense = to_dense(support, coefs, counts, n_atoms)
    return dense[:, 0] if single else dense

"""Chapter 6, exercise 1: one K-SVD dictionary update, by hand.

    python docs/solutions/ch06_atom_update.py

For atom k, with I the signals whose code uses it and E_k = X_I - D G_I + d_k g_k,I
(the residual with atom k's contribution added back), the best rank-1 replacement of
d_k g_k,I is the leading singular pair of E_k = s u v^T: d_k <- u, g_k,I <- s v^T.
Only the signals in I change, and only in entry k, so no code gains a nonzero.
"""
import numpy as np

from tinyseg.denoise import omp, overcomplete_dct

rng = np.random.default_rng(0)
D = overcomplete_dct(8, 128)
X = rng.standard_normal((64, 300)).cumsum(axis=0)        # smooth-ish random signals
G = omp(D, X, n_nonzero=4)                                # (128, 300) sparse codes
error_before = np.linalg.norm(X - D @ G)

usage = (G != 0).sum(axis=1)
k = int(np.argmax(usage[1:]) + 1)                         # a much-used atom other than DC
users = np.flatnonzero(G[k])
E = X[:, users] - D @ G[:, users] + np.outer(D[:, k], G[k, users])
u, s, vt = np.linalg.svd(E, full_matrices=False)

D2, G2 = D.copy(), G.copy()
D2[:, k] = u[:, 0]
G2[k, users] = s[0] * vt[0]
error_after = np.linalg.norm(X - D2 @ G2)

assert error_after <= error_before + 1e-9                 # the best rank-1 fit can only help
assert np.isclose(np.linalg.norm(D2[:, k]), 1.0)
assert np.array_equal(G2 != 0, G != 0)                    # the same support: as sparse as before
print(f"atom {k}, used by {len(users)} signals: error {error_before:.3f} -> {error_after:.3f}")

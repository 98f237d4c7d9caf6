"""Chapter 2, exercise 1: where the finite-difference error is smallest, and how small it gets.

    python docs/solutions/ch02_best_eps.py

The error is truncation + rounding: one-sided  eps |f''| / 2 + u |f| / eps, smallest near
eps ~ sqrt(u); central  eps^2 |f'''| / 6 + u |f| / eps, smallest near eps ~ u^(1/3).
"""
import numpy as np

u = np.finfo(np.float64).eps                       # 2^-52, about 2.2e-16
x = np.float64(0.5)
exact = 1 - np.tanh(x) ** 2
epss = np.logspace(-13, -1, 121)

one_sided = np.array([abs((np.tanh(x + e) - np.tanh(x)) / e - exact) for e in epss])
central = np.array([abs((np.tanh(x + e) - np.tanh(x - e)) / (2 * e) - exact) for e in epss])

best_one, best_central = epss[one_sided.argmin()], epss[central.argmin()]
print(f"one-sided: best eps {best_one:.1e} (sqrt(u) = {u ** 0.5:.1e}), error {one_sided.min():.1e}")
print(f"central:   best eps {best_central:.1e} (u^(1/3) = {u ** (1 / 3):.1e}), error {central.min():.1e}")

# Both optima lie within a factor of ~30 of the balance points (the constants |f|, |f''|,
# |f'''| and the raggedness of rounding move them a little) ...
assert abs(np.log10(best_one / u ** 0.5)) < 1.5
assert abs(np.log10(best_central / u ** (1 / 3))) < 1.5
# ... and the best attainable errors are about sqrt(u) ~ 1e-8 and u^(2/3) ~ 4e-11.
assert 1e-10 < one_sided.min() < 1e-7
assert central.min() < 1e-9
# gradcheck's eps = 1e-6 is not the optimum but sits on the flat bottom of the central V:
assert central[np.argmin(abs(epss - 1e-6))] < 1e-9

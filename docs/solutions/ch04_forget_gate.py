"""Chapter 4, exercise 1: the forget gate's bias gradient derived by hand, checked.

    python docs/solutions/ch04_forget_gate.py

Forward, from h_0 = c_0 = 0:  z_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh,
i, f, g, o = s(z_i), s(z_f), tanh(z_g), s(z_o),  c_t = f c_{t-1} + i g,  h_t = o tanh(c_t).
Loss L = sum_t R_t . h_t.

Backward, from the last step (dh_next = dc_next = 0 after it):
    dh_t = R_t + dh_next                         h_t feeds L and step t+1
    dc_t = dh_t o_t (1 - tanh(c_t)^2) + dc_next  c_t feeds h_t and c_{t+1}
    dz_f,t = dc_t c_{t-1} f_t (1 - f_t)          the only path from z_f into c_t
    dc_next = dc_t f_t,   dh_next = dz_t W_hh    (dz_t: all four gates)
and dL/db_f = sum_t dz_f,t. At t = 1, c_0 = 0, so dz_f,1 = 0: forgetting an empty
cell changes nothing.
"""
import numpy as np

import tinyseg as ts
import tinyseg.functional as F


def s(z):
    return 1 / (1 + np.exp(-z))


rng = np.random.default_rng(0)
T, I, H = 2, 3, 4
x = rng.uniform(-1, 1, (T, 1, I))
w_ih, w_hh = rng.uniform(-0.5, 0.5, (4 * H, I)), rng.uniform(-0.5, 0.5, (4 * H, H))
b_ih, b_hh = rng.uniform(-0.5, 0.5, 4 * H), rng.uniform(-0.5, 0.5, 4 * H)
R = rng.standard_normal((T, 1, H))

h, c = np.zeros(H), np.zeros(H)
steps = []
for t in range(T):
    z = x[t, 0] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    i, f, g, o = s(z[:H]), s(z[H:2 * H]), np.tanh(z[2 * H:3 * H]), s(z[3 * H:])
    c_prev, c = c, f * c + i * g
    h = o * np.tanh(c)
    steps.append(dict(i=i, f=f, g=g, o=o, c_prev=c_prev, c=c))

dh_next, dc_next, db_f = np.zeros(H), np.zeros(H), np.zeros(H)
for t in reversed(range(T)):
    st = steps[t]
    dh = R[t, 0] + dh_next
    dc = dh * st["o"] * (1 - np.tanh(st["c"]) ** 2) + dc_next
    dz_i = dc * st["g"] * st["i"] * (1 - st["i"])
    dz_f = dc * st["c_prev"] * st["f"] * (1 - st["f"])
    dz_g = dc * st["i"] * (1 - st["g"] ** 2)
    dz_o = dh * np.tanh(st["c"]) * st["o"] * (1 - st["o"])
    if t == 0:
        assert not dz_f.any()                       # c_0 = 0: the first forget gate gets nothing
    db_f += dz_f
    dc_next = dc * st["f"]
    dh_next = np.concatenate([dz_i, dz_f, dz_g, dz_o]) @ w_hh

params = [ts.tensor(a, requires_grad=True) for a in (x, w_ih, w_hh, b_ih, b_hh)]
F.lstm(*params).backward(R)
assert np.allclose(params[3].grad[H:2 * H], db_f, atol=1e-12)
assert np.allclose(params[4].grad[H:2 * H], db_f, atol=1e-12)   # b_hh enters z the same way
print("dL/db_f by hand:", np.round(db_f, 6))

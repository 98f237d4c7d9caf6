"""tinyseg.graph.to_dot: the autograd graph as Graphviz DOT text."""
import re

import numpy as np

import tinyseg as ts
import tinyseg.functional as F
from tinyseg.graph import to_dot


def nodes_and_edges(dot):
    nodes = dict(re.findall(r"^\s*(n\d+) \[.*?label=\"(.*?)\"\];$", dot, re.M))
    edges = re.findall(r"^\s*(n\d+) -> (n\d+) \[label=\"(\d+)\"\];$", dot, re.M)
    return nodes, [(nodes[a], nodes[b], int(k)) for a, b, k in edges]


def test_worked_example_of_chapter_one():
    x = ts.tensor(np.float64(3.0), requires_grad=True)
    y = ts.tensor(np.float64(-2.0), requires_grad=True)
    f = (x * y + x) ** 2
    dot = to_dot(f, {x: "x", y: "y"})
    assert dot.startswith("digraph autograd {") and dot.rstrip().endswith("}")
    nodes, edges = nodes_and_edges(dot)
    assert sorted(nodes.values()) == ["Add\\n()", "Mul\\n()", "Pow\\n()", "x", "y"]
    assert sorted(edges) == sorted([("x", "Mul\\n()", 0), ("y", "Mul\\n()", 1), ("Mul\\n()", "Add\\n()", 0),
                                    ("x", "Add\\n()", 1), ("Add\\n()", "Pow\\n()", 0)])
    assert re.search(r"peripheries=2, label=\"Pow", dot)        # the root's creator is marked


def test_a_leaf_alone_and_constants():
    w = ts.tensor(np.ones((2, 3)), requires_grad=True)
    assert nodes_and_edges(to_dot(w))[0] == {"n0": "(2, 3)"}
    y = (w * np.full((2, 3), 2.0)).sum()
    dot = to_dot(y)
    assert dot.count("fillcolor=\"#d0ebff\"") == 1               # w requires grad
    assert dot.count("fillcolor=\"#f1f3f5\"") == 1               # the constant does not
    assert "Sum\\n()" in dot and "Mul\\n(2, 3)" in dot


def test_every_node_once_and_shared_producers():
    x = ts.tensor(np.ones((1, 2, 4, 4)), requires_grad=True)
    w = ts.tensor(np.ones((3, 2, 3, 3)), requires_grad=True)
    h = F.relu(F.conv2d(x, w, padding=1))
    loss = (h * h).sum()                                          # h feeds Mul twice
    nodes, edges = nodes_and_edges(to_dot(loss))
    assert len(nodes) == len(set(nodes)) == 2 + 4                 # x, w, Conv2d, ReLU, Mul, Sum
    assert [(a, k) for a, b, k in edges if b.startswith("Mul")] == [("ReLU\\n(1, 3, 4, 4)", 0),
                                                                      ("ReLU\\n(1, 3, 4, 4)", 1)]


def test_labels_are_quoted():
    x = ts.tensor(np.zeros(2), requires_grad=True)
    dot = to_dot(x.sum(), {x: 'say "hi"'})
    assert 'label="say \\"hi\\""' in dot


def test_backward_unlinks_what_it_walked():
    x = ts.tensor(np.ones(3), requires_grad=True)
    y = (x * 2.0).sum()
    assert to_dot(y, {x: "x"}).count("shape=ellipse") == 2
    y.backward()                                                  # frees the graph as it goes
    assert nodes_and_edges(to_dot(y))[0] == {"n0": "()"}          # y is a leaf now
    z = (x * 2.0).sum()
    z.backward(retain_graph=True)
    assert to_dot(z).count("shape=ellipse") == 2                  # kept

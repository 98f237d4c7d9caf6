"""The autograd graph behind a tensor as Graphviz DOT text (render it with ``dot -Tsvg``).

``to_dot(loss)`` walks the same ``creator -> inputs -> producer`` links as ``backward``:
a box for every leaf (blue when it requires a gradient), an ellipse for every function
with the shapes of its outputs (a double ring for the one that made the root), and an
arrow from each input to the function that consumed it, labelled with the input's position.
Only the text is produced; no Graphviz library is needed.
"""
from __future__ import annotations

from .autograd import Edge, _topological_order


def _quote(text):
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _shape(shape):
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def to_dot(root, names=None) -> str:
    """DOT text of the graph that ``root.backward()`` would walk.

    ``names`` maps leaf tensors to labels, e.g. ``{x: "x", w: "weight"}``; other leaves
    are labelled by shape. A leaf without a creator and without inputs is a graph of one box.
    """
    labels = {id(t): name for t, name in (names or {}).items()}
    lines = ["digraph autograd {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=11];']
    node_ids = {}

    def node(key, attributes):
        if key not in node_ids:
            node_ids[key] = f"n{len(node_ids)}"
            lines.append(f"  {node_ids[key]} [{attributes}];")
        return node_ids[key]

    def leaf(tensor):
        label = labels.get(id(tensor), _shape(tensor.shape))
        fill = "#d0ebff" if tensor.requires_grad else "#f1f3f5"
        return node(("leaf", id(tensor)), f"shape=box, style=filled, fillcolor={_quote(fill)}, "
                                          f"label={_quote(label)}")

    if root.creator is None:
        leaf(root)
    else:
        for fn in reversed(_topological_order(root)):   # producers first: a readable file
            shapes = ", ".join(_shape(shape) for shape, _ in fn.output_meta)
            label = f"{type(fn).__name__}\\n{shapes}"
            ring = ", peripheries=2" if fn is root.creator else ""      # the function that made root
            target = node(("fn", id(fn)), f'shape=ellipse{ring}, label="{label}"')
            for position, edge in enumerate(fn.inputs):
                if isinstance(edge, Edge):
                    source = node_ids[("fn", id(edge.producer))]   # drawn already: producers come first
                else:
                    source = leaf(edge)
                lines.append(f'  {source} -> {target} [label="{position}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"

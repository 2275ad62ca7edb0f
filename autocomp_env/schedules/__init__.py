"""Schedule engines shared by the families of every target: the `Family` interface and marker comments
(`base`), schedule spaces of functions explored by moves (`space`), per-item move lists (`moves`) and knob
tables (`knobs`)."""

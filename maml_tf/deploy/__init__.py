"""Using a meta-learned model: load it (`loading`), adapt it and predict (`meta`), export it as a SavedModel (`savedmodel`), read images (`images`)."""

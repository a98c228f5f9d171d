"""The contract with plugins: hook specifications, result types, the Context, options."""

"""Safe self-evolution: code versions, sandboxed candidates, output comparison."""

"""Route handlers, one module per area of the contract. Each handler authenticates, decodes its
request Struct, calls one store method and returns a response Struct."""

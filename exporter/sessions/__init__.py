"""Sessions: the session model, `SessionManager` (create, read, update, delete, list, on the
tiered store of `exporter.store`), the cross-replica session index's use, and the factory that
builds a manager and its store from `Settings`."""

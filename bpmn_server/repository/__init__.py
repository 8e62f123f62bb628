"""The versioned model repository: deploy, list, fetch, export and retire process definitions."""

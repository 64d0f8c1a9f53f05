"""Syrup's Kubernetes client layer: talk to any cluster through a kubeconfig.

``client`` holds the async API client and discovery, ``cache`` the watch-based live-state
cache, ``errors`` the Status-to-exception mapping. The GitOps controller and the API use only
this package to reach a cluster, never the local cluster's internals.
"""

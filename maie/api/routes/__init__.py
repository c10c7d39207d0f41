"""The HTTP routes, one controller per module; a route never imports another route.

What routes share lives beside them: reads in :mod:`maie.api.queries`, submissions in
:mod:`maie.api.intake`, guards in :mod:`maie.api.guards`, conditional GETs in :mod:`maie.api.etags`.
"""

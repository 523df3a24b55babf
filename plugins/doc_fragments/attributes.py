# -*- coding: utf-8 -*-
# Copyright: (c) 2024, skydive.skydive contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Every module: where it runs.
    DOCUMENTATION = r"""
attributes:
  platform:
    support: full
    platforms: all
    description: Runs anywhere that reaches the analyzer, normally the controller.
"""

    # Modules creating, replacing or deleting an API resource (alert, capture, injection, rules);
    # the module says what its diff shows (attributes.diff_mode.description).
    RESOURCE = r"""
attributes:
  check_mode:
    support: full
    description: Reports what would be created, replaced or deleted without touching the analyzer.
  diff_mode:
    support: full
    description: Shows the resource before and after.
"""

    # Modules changing a node or an edge of the graph in place.
    GRAPH = r"""
attributes:
  check_mode:
    support: full
    description: Reports what would change without touching the analyzer.
  diff_mode:
    support: full
    description: Shows the element before and after.
"""

    # Modules that only read (queries, audits, diffs).
    READ_ONLY = r"""
attributes:
  check_mode:
    support: full
    description: It only reads, so it runs in check mode too.
  diff_mode:
    support: none
    description: It changes nothing, there is no diff.
"""

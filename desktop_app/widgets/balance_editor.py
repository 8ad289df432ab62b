"""Target-balance editor: per-class target shares (with locks and presets), budget, strategy mix, Plan."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QStyledItemDelegate,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from segbalance.core.recombine import STRATEGIES
from segbalance.desktop_app import core_calls
from segbalance.desktop_app.state import AppState
from segbalance.desktop_app.widgets.histogram import class_rows
from segbalance.desktop_app.widgets.image_viewer import color_icon
from segbalance.desktop_app.workers import Worker, create_worker, error_text

COL_CLASS, COL_CURRENT, COL_TARGET, COL_LOCK = range(4)


SUMMARY_LINES = 2  # lines of the plan summary under the table (all of it in the tooltip)


class ShareDelegate(QStyledItemDelegate):
    """Edits a target share in % with a spin box; shows '—' for no target."""

    def createEditor(self, parent: QWidget, _option, _index) -> QDoubleSpinBox:
        spin = QDoubleSpinBox(parent)
        spin.setRange(0, 100)
        spin.setDecimals(3)
        spin.setSingleStep(0.1)
        spin.setSuffix(" %")
        spin.setSpecialValueText("—")
        return spin

    def displayText(self, value, _locale) -> str:
        v = float(value or 0.0)
        return f"{v:.3f} %" if v > 0 else "—"


class BalanceEditor(QWidget):
    """Edits the target the planner aims at; 'Plan' runs in the background and publishes the plan."""

    planned = Signal(object)  # Plan

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.worker: Worker | None = None
        self.plan_path = None
        self._filling = False

        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Class", "Train now", "Target %", "Lock"])
        self.table.horizontalHeaderItem(1).setToolTip("Share of labeled pixels in the train split (what a plan "
                                                      "balances); the Classes histogram may show all splits")
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setItemDelegateForColumn(COL_TARGET, ShareDelegate(self.table))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.SelectedClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed
                                   | QAbstractItemView.EditTrigger.AnyKeyPressed)
        self.table.itemChanged.connect(self._item_changed)
        hdr = self.table.horizontalHeader()
        hdr.setSectionResizeMode(COL_CLASS, QHeaderView.ResizeMode.Stretch)
        for c in (COL_CURRENT, COL_TARGET, COL_LOCK):
            hdr.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)

        self.preset_box = QComboBox()
        self.preset_param = QDoubleSpinBox()
        self.preset_param.setDecimals(3)
        self.preset_param.setRange(0.001, 100)
        self.preset_param.setSingleStep(0.5)
        self.preset_param.setMinimumWidth(110)
        self.apply_preset = QPushButton("Apply preset")
        self.apply_preset.setToolTip("Fill the targets of unlocked classes from the preset")
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Remove the targets of unlocked classes")
        self.budget = QSpinBox()
        self.budget.setRange(1, 1_000_000)
        self.budget.setValue(50)
        self.budget.setToolTip("Maximum number of new label maps")
        self.mix = {s: QSpinBox() for s in STRATEGIES}
        for s, box in self.mix.items():
            box.setRange(0, 100)
            box.setValue(1)
            box.setToolTip(f"Relative weight of the {s!r} strategy (0 = never)")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.plan_button = QPushButton("Plan")
        self.plan_button.setToolTip("Compute a plan in the background; the histogram shows its predicted effect")
        self.cancel_button = QPushButton("Cancel")
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.summary = QLabel("No plan yet")
        self.summary.setObjectName("summary_label")
        self.summary.setWordWrap(True)
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Maximum)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        presets = QGridLayout()
        presets.addWidget(self.preset_box, 0, 0)
        presets.addWidget(self.preset_param, 0, 1)
        presets.addWidget(self.apply_preset, 1, 0)
        presets.addWidget(self.clear_button, 1, 1)
        mix = QHBoxLayout()
        for s, box in self.mix.items():
            box.setMaximumWidth(56)
            mix.addWidget(QLabel(s))
            mix.addWidget(box)
        mix.addStretch(1)
        form = QFormLayout()
        form.addRow("Preset", presets)
        form.addRow("Budget", self.budget)
        form.addRow("Strategy mix", mix)
        form.addRow("Seed", self.seed)
        buttons = QHBoxLayout()
        buttons.addWidget(self.plan_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.progress, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.table, 1)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addWidget(self.summary)

        self.preset_box.currentTextChanged.connect(self._preset_changed)
        self.apply_preset.clicked.connect(self.apply_selected_preset)
        self.clear_button.clicked.connect(self.clear_targets)
        self.plan_button.clicked.connect(self.start_plan)
        self.cancel_button.clicked.connect(self.cancel)
        state.statsChanged.connect(lambda _s: self.refresh())
        state.planChanged.connect(self._plan_changed)
        self.preset_box.addItems(core_calls.preset_names())
        self.refresh()

    # -- table ----------------------------------------------------------------------
    def refresh(self) -> None:
        """Fill the table from the train-split stats, keeping the targets and locks the user set.

        Plain items with a spin-box delegate (not a widget per cell): cheap to rebuild and to paint.
        """
        old_t, old_l = self.targets(), self.locked()
        if not self.table.rowCount():  # first fill for this dataset: what was set last time in this workspace
            old_t, old_l = self.state.saved_targets()
        stats = self.state.train_stats()
        rows = class_rows(stats) if stats is not None else []
        self._filling = True
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            name = QTableWidgetItem(color_icon(r.color), r.name)
            name.setFlags(Qt.ItemFlag.ItemIsEnabled)
            cur = QTableWidgetItem(f"{r.share:.3%}")
            cur.setFlags(Qt.ItemFlag.ItemIsEnabled)
            cur.setData(Qt.ItemDataRole.UserRole, r.share)
            cur.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            target = QTableWidgetItem()
            target.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsEditable)
            target.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            target.setData(Qt.ItemDataRole.EditRole, round(100 * old_t.get(r.name, 0.0), 3))
            target.setToolTip("Target share in % of labeled pixels (double-click to edit; 0 = no target)")
            lock = QTableWidgetItem()
            lock.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
            lock.setCheckState(Qt.CheckState.Checked if r.name in old_l else Qt.CheckState.Unchecked)
            lock.setToolTip("Locked: presets and Clear leave this target alone")
            for col, item in ((COL_CLASS, name), (COL_CURRENT, cur), (COL_TARGET, target), (COL_LOCK, lock)):
                self.table.setItem(i, col, item)
        self._filling = False
        ready = stats is not None
        for w in (self.apply_preset, self.clear_button, self.plan_button):
            w.setEnabled(ready)
        self.cancel_button.setEnabled(False)
        self._targets_edited()

    def class_names(self) -> list[str]:
        return [self.table.item(i, COL_CLASS).text() for i in range(self.table.rowCount())]

    def current_shares(self) -> dict[str, float]:
        return {self.table.item(i, COL_CLASS).text(): self.table.item(i, COL_CURRENT).data(Qt.ItemDataRole.UserRole)
                for i in range(self.table.rowCount())}

    def target_item(self, name: str) -> QTableWidgetItem:
        return self.table.item(self.class_names().index(name), COL_TARGET)

    def targets(self) -> dict[str, float]:
        """Class -> target share (0..1) of the classes that have one."""
        out = {}
        for i in range(self.table.rowCount()):
            v = float(self.table.item(i, COL_TARGET).data(Qt.ItemDataRole.EditRole) or 0.0)
            if v > 0:
                out[self.table.item(i, COL_CLASS).text()] = v / 100
        return out

    def locked(self) -> set[str]:
        return {self.table.item(i, COL_CLASS).text() for i in range(self.table.rowCount())
                if self.table.item(i, COL_LOCK).checkState() == Qt.CheckState.Checked}

    def set_target(self, name: str, share: float | None, *, lock: bool | None = None) -> None:
        i = self.class_names().index(name)
        self.table.item(i, COL_TARGET).setData(Qt.ItemDataRole.EditRole, round(100 * (share or 0.0), 3))
        if lock is not None:
            self.table.item(i, COL_LOCK).setCheckState(Qt.CheckState.Checked if lock else Qt.CheckState.Unchecked)

    def _item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() == COL_TARGET:
            self._targets_edited()
        if item.column() in (COL_TARGET, COL_LOCK) and not self._filling:  # a user's (or preset's) change
            self.state.remember_targets(self.targets(), self.locked())

    def _targets_edited(self) -> None:
        if not self._filling:
            t = self.targets()
            self.state.set_target(t or None)
            total = sum(t.values())
            if total > 1:
                self.summary.setText(f"Targets sum to {total:.1%}, more than 100%: lower some")

    # -- presets ---------------------------------------------------------------------
    def _preset_changed(self, name: str) -> None:
        if not name:
            return
        default = core_calls.preset_default(name)
        if name == "raise-rare":
            self.preset_param.setSuffix(" % share")
            self.preset_param.setValue(100 * default)
            self.preset_param.setToolTip("Lift every class below this share up to it")
        elif name == "inverse-frequency":
            self.preset_param.setSuffix(" temperature")
            self.preset_param.setValue(default)
            self.preset_param.setToolTip("Target ∝ share^(1/T); larger T is flatter (T ≥ 1)")
        else:
            self.preset_param.setSuffix(" × cap")
            self.preset_param.setValue(default)
            self.preset_param.setToolTip("Lift toward uniform, at most this many times the current share")

    def apply_selected_preset(self) -> None:
        name = self.preset_box.currentText()
        param = self.preset_param.value() / (100 if name == "raise-rare" else 1)
        locked = self.locked()
        shares = self.current_shares()
        try:
            target = core_calls.preset_target(name, param, shares, [c for c in shares if c not in locked])
        except Exception as exc:  # noqa: BLE001 - a bad parameter is the user's to fix, shown inline
            self.summary.setText(f"Preset: {error_text(exc)}")
            return
        self._filling = True
        for c in shares:
            if c not in locked:
                self.set_target(c, target.get(c))
        self._filling = False
        self._targets_edited()
        self.state.remember_targets(self.targets(), self.locked())  # a preset's targets are kept like typed ones

    def clear_targets(self) -> None:
        self._filling = True
        for c in self.class_names():
            if c not in self.locked():
                self.set_target(c, None)
        self._filling = False
        self._targets_edited()
        self.state.remember_targets(self.targets(), self.locked())

    # -- planning ----------------------------------------------------------------------
    def strategy_mix(self) -> dict[str, float] | str:
        mix = {s: float(b.value()) for s, b in self.mix.items() if b.value() > 0}
        if len(mix) == 3 and len(set(mix.values())) == 1:
            return "auto"
        return mix

    def start_plan(self) -> Worker | None:
        s = self.state
        target = self.targets()
        if not target:
            self.summary.setText("Set a target share for at least one class (or apply a preset)")
            return None
        if not self.strategy_mix():
            self.summary.setText("Give at least one strategy a weight above 0")
            return None
        if s.dataset is None or s.workspace is None or s.train_stats() is None:
            return None
        w = create_worker(core_calls.make_plan, s.dataset, s.workspace, s.train_stats(), target, self.budget.value(),
                          self.strategy_mix(), self.seed.value())
        w.progress.connect(self._progress)
        w.returned.connect(self._planned)
        w.errored.connect(lambda exc: self.summary.setText(f"Plan failed: {error_text(exc)}"))
        w.cancelled.connect(lambda: self.summary.setText("Plan cancelled"))
        w.finished.connect(self._finished)
        self.worker = w
        self.plan_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.summary.setText("Planning…")
        s.run("Plan", w, lambda res: f"{len(res[0].recipes)} recipes (budget {res[0].budget}) → {res[1].name}",
              kept=lambda: "nothing: a plan is saved only when complete (the layer bank built so far is kept)")
        return w

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def _progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)

    def _planned(self, result) -> None:
        plan, path = result
        if not plan.recipes:
            self.summary.setText("No recipe brings these targets closer (is there anything of these classes to "
                                 "paste?): raise the budget, lower the targets, or pick other classes")
            return
        self.plan_path = path
        self.state.plan_path = path
        self.state.set_plan(plan)
        self.planned.emit(plan)

    def _plan_changed(self, plan) -> None:
        if plan is None:  # another dataset or workspace: the last one's summary is not this one's
            self.summary.setText("No plan yet")
            self.summary.setToolTip("")
            return
        ls = self.state.dataset.label_set if self.state.dataset is not None else None
        text = core_calls.plan_summary(plan, ls) if ls is not None else f"{len(plan.recipes)} recipes"
        skipped = getattr(plan, "skipped", None)
        if skipped:
            text += f"\nskipped (no layers to paste): {', '.join(skipped)}"
        # two lines at most, the rest in the tooltip: a long plan never squeezes the table
        lines = text.splitlines()
        self.summary.setWordWrap(False)
        self.summary.setText("\n".join(lines[:SUMMARY_LINES]) + (" …" if len(lines) > SUMMARY_LINES else ""))
        self.summary.setToolTip(text + (f"\n\nsaved as {self.plan_path}" if self.plan_path else ""))

    def _finished(self) -> None:
        self.worker = None
        self.plan_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setVisible(False)

//! Calling an adapter of any served version through the neutral model.
//!
//! [`add_to_linker`] links one version's contract imports, served by the
//! host's single [`Imports`] implementation; [`AdapterPre`] and
//! [`AdapterInstance`] hide which version's generated bindings sit behind a
//! call. Adding a contract version means a new `v1_x` module and one arm
//! in each `match` here.

use std::future::Future;

use std::marker::PhantomData;

use wasmtime::Store;
use wasmtime::component::{HasData, InstancePre, Linker};

use crate::ContractVersion;
use crate::model::{
    ChannelInfo, HttpRequest, LogLevel, OutboundMessage, OutgoingRequest, OutgoingResult,
    SendResult, StorageError, WebhookResult,
};
use crate::{v1_0, v1_1, v1_2};

/// The host side of the contract's imports, written once for every version.
///
/// Each version's shim implements its generated `Host` traits by calling
/// these, so that capability checks, quotas and logging rules live in one
/// place and an old version can never bypass them.
pub trait Imports: Send {
    /// A declared setting.
    fn setting(&mut self, key: String) -> impl Future<Output = Option<String>> + Send;
    /// A declared secret.
    fn secret(&mut self, key: String) -> impl Future<Output = Option<String>> + Send;
    /// `token-cache.get`.
    fn token_get(&mut self, key: String) -> impl Future<Output = Option<String>> + Send;
    /// `token-cache.lock`.
    fn token_lock(&mut self, key: String) -> impl Future<Output = Option<String>> + Send;
    /// `token-cache.set`.
    fn token_set(
        &mut self,
        key: String,
        value: String,
        ttl_seconds: u32,
    ) -> impl Future<Output = ()> + Send;
    /// `token-cache.invalidate`.
    fn token_invalidate(&mut self, key: String) -> impl Future<Output = ()> + Send;
    /// `storage.get` (1.1.0).
    fn storage_get(&mut self, key: String) -> impl Future<Output = Option<String>> + Send;
    /// `storage.put` (1.1.0).
    fn storage_put(
        &mut self,
        key: String,
        value: String,
        ttl_seconds: Option<u32>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// `storage.put-if-absent` (1.1.0).
    fn storage_put_if_absent(
        &mut self,
        key: String,
        value: String,
        ttl_seconds: Option<u32>,
    ) -> impl Future<Output = Result<String, StorageError>> + Send;
    /// `storage.delete` (1.1.0).
    fn storage_delete(&mut self, key: String) -> impl Future<Output = ()> + Send;
    /// `outcomes.report` (1.1.0).
    fn report_outcome(
        &mut self,
        index: u32,
        outcome: SendResult,
    ) -> impl Future<Output = ()> + Send;
    /// `http.send` (1.2.0): perform every request, one result per request
    /// in the same order.
    fn http_send(
        &mut self,
        requests: Vec<OutgoingRequest>,
    ) -> impl Future<Output = Vec<OutgoingResult>> + Send;
    /// `log.write`.
    fn log(&mut self, level: LogLevel, message: String) -> impl Future<Output = ()> + Send;
}

/// The store data seen through the contract's imports: each version's
/// generated `Host` traits are implemented for it by calling [`Imports`].
pub struct Shim<'a, T>(pub(crate) &'a mut T);

/// Tells the generated `add_to_linker` to hand imports a [`Shim`].
struct ShimData<T>(PhantomData<T>);

impl<T: 'static> HasData for ShimData<T> {
    type Data<'a> = Shim<'a, T>;
}

/// Link the contract imports of `version` into `linker`.
pub fn add_to_linker<T: Imports + 'static>(
    linker: &mut Linker<T>,
    version: ContractVersion,
) -> wasmtime::Result<()> {
    match version {
        ContractVersion::V1_0 => {
            v1_0::ChannelAdapter::add_to_linker::<T, ShimData<T>>(linker, |state| Shim(state))
        }
        ContractVersion::V1_1 => {
            v1_1::ChannelAdapter::add_to_linker::<T, ShimData<T>>(linker, |state| Shim(state))
        }
        ContractVersion::V1_2 => {
            v1_2::ChannelAdapter::add_to_linker::<T, ShimData<T>>(linker, |state| Shim(state))
        }
    }
}

/// A component pre-linked against one version's bindings.
pub enum AdapterPre<T: 'static> {
    /// Contract 1.0.0.
    V1_0(v1_0::ChannelAdapterPre<T>),
    /// Contract 1.1.0.
    V1_1(v1_1::ChannelAdapterPre<T>),
    /// Contract 1.2.0.
    V1_2(v1_2::ChannelAdapterPre<T>),
}

impl<T: Send + 'static> AdapterPre<T> {
    /// Check that `pre` exports `version`'s adapter interface.
    pub fn new(version: ContractVersion, pre: InstancePre<T>) -> wasmtime::Result<Self> {
        Ok(match version {
            ContractVersion::V1_0 => Self::V1_0(v1_0::ChannelAdapterPre::new(pre)?),
            ContractVersion::V1_1 => Self::V1_1(v1_1::ChannelAdapterPre::new(pre)?),
            ContractVersion::V1_2 => Self::V1_2(v1_2::ChannelAdapterPre::new(pre)?),
        })
    }

    /// The version behind it.
    pub fn version(&self) -> ContractVersion {
        match self {
            Self::V1_0(_) => ContractVersion::V1_0,
            Self::V1_1(_) => ContractVersion::V1_1,
            Self::V1_2(_) => ContractVersion::V1_2,
        }
    }

    /// The engine it was compiled for.
    pub fn engine(&self) -> &wasmtime::Engine {
        match self {
            Self::V1_0(pre) => pre.engine(),
            Self::V1_1(pre) => pre.engine(),
            Self::V1_2(pre) => pre.engine(),
        }
    }

    /// A fresh instance in `store`.
    pub async fn instantiate(&self, store: &mut Store<T>) -> wasmtime::Result<AdapterInstance> {
        Ok(match self {
            Self::V1_0(pre) => AdapterInstance::V1_0(pre.instantiate_async(store).await?),
            Self::V1_1(pre) => AdapterInstance::V1_1(pre.instantiate_async(store).await?),
            Self::V1_2(pre) => AdapterInstance::V1_2(pre.instantiate_async(store).await?),
        })
    }
}

/// An instantiated adapter of some version, called through the model.
pub enum AdapterInstance {
    /// Contract 1.0.0.
    V1_0(v1_0::ChannelAdapter),
    /// Contract 1.1.0.
    V1_1(v1_1::ChannelAdapter),
    /// Contract 1.2.0.
    V1_2(v1_2::ChannelAdapter),
}

impl AdapterInstance {
    /// `describe`.
    pub async fn describe<T: Send>(&self, store: &mut Store<T>) -> wasmtime::Result<ChannelInfo> {
        Ok(match self {
            Self::V1_0(adapter) => adapter
                .switchboard_channel_adapter()
                .call_describe(store)
                .await?
                .into(),
            Self::V1_1(adapter) => adapter
                .switchboard_channel_adapter()
                .call_describe(store)
                .await?
                .into(),
            Self::V1_2(adapter) => adapter
                .switchboard_channel_adapter()
                .call_describe(store)
                .await?
                .into(),
        })
    }

    /// `send`; one result per message as the adapter returned them (the
    /// caller checks the count).
    pub async fn send<T: Send>(
        &self,
        store: &mut Store<T>,
        batch: &[OutboundMessage],
    ) -> wasmtime::Result<Vec<SendResult>> {
        Ok(match self {
            Self::V1_0(adapter) => {
                let batch: Vec<v1_0::switchboard::channel::types::OutboundMessage> =
                    batch.iter().map(Into::into).collect();
                adapter
                    .switchboard_channel_adapter()
                    .call_send(store, &batch)
                    .await?
                    .into_iter()
                    .map(|result| result.map(Into::into).map_err(Into::into))
                    .collect()
            }
            // 1.2.0's types are 1.1.0's (see `v1_2`): one conversion serves both.
            Self::V1_1(adapter) => from_1_1(
                adapter
                    .switchboard_channel_adapter()
                    .call_send(store, &to_1_1(batch))
                    .await?,
            ),
            Self::V1_2(adapter) => from_1_1(
                adapter
                    .switchboard_channel_adapter()
                    .call_send(store, &to_1_1(batch))
                    .await?,
            ),
        })
    }

    /// `handle-webhook`.
    pub async fn handle_webhook<T: Send>(
        &self,
        store: &mut Store<T>,
        request: &HttpRequest,
    ) -> wasmtime::Result<WebhookResult> {
        Ok(match self {
            Self::V1_0(adapter) => adapter
                .switchboard_channel_adapter()
                .call_handle_webhook(store, &request.into())
                .await?
                .into(),
            Self::V1_1(adapter) => adapter
                .switchboard_channel_adapter()
                .call_handle_webhook(store, &request.into())
                .await?
                .into(),
            Self::V1_2(adapter) => adapter
                .switchboard_channel_adapter()
                .call_handle_webhook(store, &request.into())
                .await?
                .into(),
        })
    }
}

/// A batch as 1.1.0 (and 1.2.0) take it.
fn to_1_1(batch: &[OutboundMessage]) -> Vec<v1_1::switchboard::channel::types::OutboundMessage> {
    batch.iter().map(Into::into).collect()
}

/// What 1.1.0 (and 1.2.0) return from `send`, in the model.
fn from_1_1(
    results: Vec<
        Result<
            v1_1::switchboard::channel::types::Receipt,
            v1_1::switchboard::channel::types::SendError,
        >,
    >,
) -> Vec<SendResult> {
    results
        .into_iter()
        .map(|result| result.map(Into::into).map_err(Into::into))
        .collect()
}
